"""Applying permutations to state dicts: hard (index vectors) or soft (dense matrices), one code path.

A permutation of a group is either an index vector ``p`` of shape (n,) — unit i of the result is
unit ``p[i]`` of the input — or a matrix ``P`` of shape (n, n) with result unit i = Σ_j P[i, j] ·
unit j. The one-hot matrix of ``p`` (``as_matrix``) gives the same result as ``p``; a doubly
stochastic ``P`` (PAM's relaxation) gives a differentiable mixture of units (BatchNorm running
variances are mixed like any entry, which is not the variance of the mixed unit: recompute the
statistics of a softly permuted network before evaluating it). Groups missing from ``perms`` are
left as they are (identity).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from landscape_pl.errors import LandscapeError
from landscape_pl.symmetry.spec import Axis, PermutationSpec

Permutations = Mapping[str, torch.Tensor]


def permute_axis(value: torch.Tensor, axis: Axis, p: torch.Tensor) -> torch.Tensor:
    """``value`` with the units on ``axis.dim`` reordered by an index vector or mixed by a matrix."""
    n = p.shape[0]
    span = axis.span(n)
    if span.start > 0 or span.stop < value.shape[axis.dim]:  # a slice: permute it, keep the rest
        inside = permute_axis(value.narrow(axis.dim, span.start, span.stop - span.start), Axis(axis.entry, axis.dim, axis.block), p)
        before = value.narrow(axis.dim, 0, span.start)
        after = value.narrow(axis.dim, span.stop, value.shape[axis.dim] - span.stop)
        return torch.cat([before, inside, after], axis.dim)
    moved = value.movedim(axis.dim, 0)
    units = moved.reshape(n, -1)
    if p.dim() == 1:
        units = units.index_select(0, p.to(units.device))
    else:
        units = p.to(units) @ units
    return units.reshape(moved.shape).movedim(0, axis.dim)


def permute_entry(name: str, value: torch.Tensor, spec: PermutationSpec, perms: Permutations, skip: str | None = None) -> torch.Tensor:
    """One state entry with every group that touches it applied (except ``skip``, for weight matching)."""
    for axis, group in spec.axes_by_entry.get(name, ()):
        if group in perms and group != skip:
            value = permute_axis(value, axis, perms[group])
    return value


def check_permutations(spec: PermutationSpec, perms: Permutations) -> None:
    """Every key names a group, and every permutation has the group's size."""
    for name, p in perms.items():
        if name not in spec.names:
            raise LandscapeError(f"permutation for unknown group {name!r}; the spec's groups are {list(spec.names)}")
        size = spec[name].size
        if p.shape[0] != size or (p.dim() == 2 and p.shape[1] != size) or p.dim() not in (1, 2):
            raise LandscapeError(f"permutation of group {name!r} has shape {tuple(p.shape)}; expected ({size},) or ({size}, {size})")


def permute(state: Mapping[str, torch.Tensor], spec: PermutationSpec, perms: Permutations) -> dict[str, torch.Tensor]:
    """A new state dict with ``perms`` applied (pure: ``state`` is not changed; differentiable in soft P)."""
    check_permutations(spec, perms)
    return {name: permute_entry(name, value, spec, perms) for name, value in state.items()}


def permute_network(network: nn.Module, spec: PermutationSpec, perms: Permutations) -> nn.Module:
    """A copy of ``network`` with hard permutations applied: the same function, units reordered."""
    permuted = copy.deepcopy(network)
    with torch.no_grad():
        permuted.load_state_dict(permute(network.state_dict(), spec, perms))
    return permuted


def identity(spec: PermutationSpec) -> dict[str, torch.Tensor]:
    return {g.name: torch.arange(g.size) for g in spec.groups}


def random_permutations(spec: PermutationSpec, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {g.name: torch.randperm(g.size, generator=generator) for g in spec.groups}


def inverse(perms: Permutations) -> dict[str, torch.Tensor]:
    """Index permutations that undo ``perms``."""
    return {name: torch.argsort(p) for name, p in perms.items()}


def as_matrix(p: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The one-hot (n, n) matrix P with P[i, p[i]] = 1, which ``permute_axis`` treats exactly as ``p``."""
    return torch.eye(len(p), dtype=dtype)[p]


def to_lists(perms: Permutations) -> dict[str, list[int]]:
    """JSON-ready index lists (the file format of ``align``'s permutation.json)."""
    return {name: [int(i) for i in p.tolist()] for name, p in perms.items()}


def from_lists(lists: Mapping[str, list[int]]) -> dict[str, torch.Tensor]:
    return {name: torch.tensor(values, dtype=torch.long) for name, values in lists.items()}
