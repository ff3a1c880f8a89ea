"""Activation alignment (algorithm 1 of the alignment paper): match units by cross-correlation.

Both networks see the same batches; hooks at each group's probes reduce the activations of a batch
to running sums (Σx, Σx², Σ x_a x_bᵀ per probe) as it passes, so memory is O(units²) per probe and
no activation is kept beyond its batch. Conv channels are units and every position is a sample.

The paper aligns layers in order, each with the previous layer already permuted. Permuting layer
l-1 of network B does not change the values of layer l's units (the network computes the same
function), only which of B's units sits where in layer l-1; so every layer's cross-correlation can
be gathered in one pass and each assignment solved on its own, with the same result.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn
from tqdm.auto import tqdm

from landscape_pl.symmetry.spec import PermutationSpec, Probe

# A unit whose variance is at most this fraction of its squared mean (std <= 0.1% of |mean|, or exactly 0)
# is constant ("dead"): float32 sums leave ~1e-7 relative noise in the variance of a truly constant unit.
DEAD_TOLERANCE = 1e-6


@dataclass
class Correlation:
    """Cross-correlation of a group's units: ``matrix[i, j]`` between unit i of A and unit j of B.

    Dead (constant) units have a z-score of 0, hence zero rows/columns; their indices are listed.
    """

    matrix: torch.Tensor
    dead_a: list[int]
    dead_b: list[int]


class CrossStatistics:
    """Running sums of two (samples x units) activation streams, enough for their cross-correlation."""

    def __init__(self, units: int, device: torch.device) -> None:
        zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float64, device=device)  # noqa: E731
        self.count = 0
        self.sum_a, self.sum_b, self.square_a, self.square_b = zeros(units), zeros(units), zeros(units), zeros(units)
        self.cross = zeros(units, units)

    def update(self, a: torch.Tensor, b: torch.Tensor) -> None:
        self.count += a.shape[0]
        self.sum_a += a.sum(0).double()
        self.sum_b += b.sum(0).double()
        self.square_a += (a * a).sum(0).double()
        self.square_b += (b * b).sum(0).double()
        self.cross += (a.T @ b).double()

    def correlation(self) -> Correlation:
        n = self.count
        mean_a, mean_b = self.sum_a / n, self.sum_b / n
        var_a = (self.square_a / n - mean_a**2).clamp_min(0)
        var_b = (self.square_b / n - mean_b**2).clamp_min(0)
        dead_a = var_a <= DEAD_TOLERANCE * mean_a**2
        dead_b = var_b <= DEAD_TOLERANCE * mean_b**2
        inv_a = torch.where(dead_a, 0.0, var_a.rsqrt())
        inv_b = torch.where(dead_b, 0.0, var_b.rsqrt())
        covariance = self.cross / n - torch.outer(mean_a, mean_b)
        matrix = (covariance * torch.outer(inv_a, inv_b)).clamp(-1, 1).cpu()
        return Correlation(matrix, dead_a.nonzero().flatten().tolist(), dead_b.nonzero().flatten().tolist())


def units(x: torch.Tensor) -> torch.Tensor:
    """(samples, units): units on dim 1; batch and positions (if any) become samples."""
    return x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2).reshape(-1, x.shape[1]) if x.dim() > 2 else x


def hook(module: nn.Module, probe: Probe, callback) -> torch.utils.hooks.RemovableHandle:
    if probe.input:
        return module.register_forward_pre_hook(lambda _m, args: callback(args[0]))
    return module.register_forward_hook(lambda _m, _args, output: callback(output))


@torch.no_grad()
def cross_correlations(
    net_a: nn.Module, net_b: nn.Module, spec: PermutationSpec, batches: Iterable, progress: bool = False
) -> dict[str, Correlation]:
    """Per group, the cross-correlation of A's and B's units on ``batches`` (streams: mean over probes)."""
    modules_a, modules_b = dict(net_a.named_modules()), dict(net_b.named_modules())
    device = next(net_a.parameters()).device
    stats: dict[tuple[str, Probe], CrossStatistics] = {}
    held: dict[Probe, torch.Tensor] = {}
    handles = []

    def keep(probe: Probe):
        def callback(x: torch.Tensor) -> None:
            held[probe] = units(x)
        return callback

    def reduce(group: str, size: int, probe: Probe):
        def callback(x: torch.Tensor) -> None:
            key = (group, probe)
            if key not in stats:
                stats[key] = CrossStatistics(size, device)
            stats[key].update(held.pop(probe).float(), units(x).float())
        return callback

    for group in spec.groups:
        for probe in group.probes:
            handles.append(hook(modules_a[probe.module], probe, keep(probe)))
            handles.append(hook(modules_b[probe.module], probe, reduce(group.name, group.size, probe)))
    modes = net_a.training, net_b.training
    net_a.eval(), net_b.eval()
    try:
        for x, *_ in tqdm(batches, desc="activations", disable=not progress, leave=False):
            x = x.to(device)
            net_a(x)
            net_b(x)
    finally:
        for handle in handles:
            handle.remove()
        net_a.train(modes[0]), net_b.train(modes[1])
    result = {}
    for group in spec.groups:
        parts = [stats[(group.name, probe)].correlation() for probe in group.probes]
        result[group.name] = Correlation(
            torch.stack([p.matrix for p in parts]).mean(0),
            sorted({i for p in parts for i in p.dead_a}),
            sorted({i for p in parts for i in p.dead_b}),
        )
    return result


def assign(matrix: torch.Tensor) -> torch.Tensor:
    """The index permutation p maximizing Σ_i matrix[i, p[i]] (Hungarian algorithm, scipy)."""
    rows, columns = linear_sum_assignment(matrix.double().numpy(), maximize=True)
    return torch.as_tensor(columns[np.argsort(rows)], dtype=torch.long)


def align_activations(
    net_a: nn.Module, net_b: nn.Module, spec: PermutationSpec, batches: Iterable, progress: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, Correlation]]:
    """Permutations of B's units that maximize the correlation with A's, and the correlations (of unpermuted B)."""
    correlations = cross_correlations(net_a, net_b, spec, batches, progress)
    for name, corr in correlations.items():
        if corr.dead_a or corr.dead_b:
            warnings.warn(
                f"group {name}: constant activations on the alignment data for units {corr.dead_a} of the first "
                f"network and {corr.dead_b} of the second; their correlation is taken as 0", stacklevel=2
            )
    return {name: assign(corr.matrix) for name, corr in correlations.items()}, correlations
