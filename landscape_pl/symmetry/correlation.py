"""How well the units of two networks correspond: the correlation signature (Figure 1b, appendix F).

The signature of a pair is, per group, the mean cross-correlation of corresponding units: unit i of
A with unit i of B (or with unit p[i] of B under a permutation p). Along a curve, the signature
between its midpoint and each endpoint shows whether the curve interpolates matching features;
the linear midpoint ½(θ_A + θ_B) is the reference, and the midpoint aligned to the endpoint the
upper bound.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from landscape_pl.paths import NetworkSlots, line, recompute_batchnorm
from landscape_pl.symmetry.activation import Correlation, assign, cross_correlations
from landscape_pl.symmetry.spec import PermutationSpec


def mean_correlation(correlation: Correlation, p: torch.Tensor | None = None) -> float:
    """Mean cross-correlation of corresponding units (unit i of A with unit p[i] of B; p = identity if None)."""
    matrix = correlation.matrix
    columns = torch.arange(matrix.shape[0]) if p is None else p
    return float(matrix[torch.arange(matrix.shape[0]), columns].mean())


def signature(correlations: Mapping[str, Correlation], perms: Mapping[str, torch.Tensor] | None = None) -> dict[str, float]:
    """Per group, the mean cross-correlation of corresponding units."""
    return {name: mean_correlation(corr, None if perms is None else perms[name]) for name, corr in correlations.items()}


def linear_midpoint(net_a: nn.Module, net_b: nn.Module, bn_batches: Iterable | None = None) -> nn.Module:
    """A copy of A at ½(θ_A + θ_B), BatchNorm statistics recomputed on ``bn_batches`` when given."""
    path = line(net_a.state_dict(), net_b.state_dict(), labels=("start", "end"))
    midpoint = copy.deepcopy(net_a)
    NetworkSlots(midpoint, path.anchors.names).write(path.point(0.5))
    if bn_batches is not None:
        recompute_batchnorm(midpoint, bn_batches)
    return midpoint


def correlation_signature(
    midpoint: nn.Module, endpoints: Mapping[str, nn.Module], spec: PermutationSpec, batches: Iterable, progress: bool = False
) -> dict[str, dict[str, dict[str, float]]]:
    """For each endpoint: the signature between it and ``midpoint`` as is, and with the midpoint aligned to it.

    Works for any network of the endpoints' architecture: a curve's exported midpoint, or ``linear_midpoint``.
    """
    result = {}
    for label, endpoint in endpoints.items():
        correlations = cross_correlations(endpoint, midpoint, spec, batches, progress)
        aligned = {name: assign(corr.matrix) for name, corr in correlations.items()}
        result[label] = {"as_is": signature(correlations), "aligned": signature(correlations, aligned)}
    return result
