"""Two networks to align: the checks they must pass, and the one call that finds B's permutation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

from landscape_pl.errors import LandscapeError
from landscape_pl.paths.anchors import check_compatible
from landscape_pl.symmetry.activation import align_activations
from landscape_pl.symmetry.derive import spec_of
from landscape_pl.symmetry.spec import PermutationSpec
from landscape_pl.symmetry.weight_matching import match_weights

Method = Literal["activation", "weight"]


def check_same_architecture(net_a: nn.Module, net_b: nn.Module, labels: tuple[str, str] = ("start", "end")) -> None:
    """Two networks of one architecture and width, or an error naming the first mismatch."""
    if type(net_a) is not type(net_b):
        raise LandscapeError(
            f"{labels[0]} is a {type(net_a).__name__} and {labels[1]} a {type(net_b).__name__}: "
            "only networks of one architecture can be aligned"
        )
    check_compatible([net_a.state_dict(), net_b.state_dict()], list(labels))


def check_pair(net_a: nn.Module, net_b: nn.Module, labels: tuple[str, str] = ("start", "end"),
               example: torch.Tensor | None = None) -> PermutationSpec:
    """The shared spec of two networks of one architecture and width (checked on ``example``, e.g. the first
    inputs of the data they are aligned on; else on a guessed input); errors name the first mismatch."""
    check_same_architecture(net_a, net_b, labels)
    return spec_of(net_a, example)


def find_permutation(
    net_a: nn.Module, net_b: nn.Module, method: Method = "activation", batches: Iterable | None = None,
    spec: PermutationSpec | None = None, progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Index permutations of B's groups that align B to A, by activations (needs ``batches``; groups without
    probes, attention heads and head dims, are weight matched: ``weight_matched(spec)``) or by weights."""
    spec = spec or check_pair(net_a, net_b)
    if method == "activation":
        if batches is None:
            raise LandscapeError("activation alignment needs data: pass batches (the CLI takes --data)")
        return align_activations(net_a, net_b, spec, batches, progress)[0]
    if method == "weight":
        params = [n for n, _ in net_a.named_parameters()]
        return match_weights(net_a.state_dict(), net_b.state_dict(), spec, entries=params)
    raise LandscapeError(f"method must be 'activation' or 'weight', got {method!r}")
