"""Applying permutations to state dicts: hard (index vectors) or soft (dense matrices), one code path.

A permutation of a group is either an index vector ``p`` of shape (n,) — unit i of the result is
unit ``p[i]`` of the input — or a matrix ``P`` of shape (n, n) with result unit i = Σ_j P[i, j] ·
unit j. The one-hot matrix of ``p`` (``as_matrix``) gives the same result as ``p``; a doubly
stochastic ``P`` (PAM's relaxation) gives a differentiable mixture of units (BatchNorm running
variances are mixed like any entry, which is not the variance of the mixed unit: recompute the
statistics of a softly permuted network before evaluating it). Groups missing from ``perms`` are
left as they are (identity).

An axis may own a slice of its dimension (``offset``) and ``block`` entries per unit. Groups act on
an entry in the spec's order; a group nested in another's units (an attention head's query/key
dims, at the offsets of head k, inside the heads group) acts after it, so it permutes whatever head
the outer group put at position k: its inverse is the inverse at the position that head came from
(``inverse(perms, spec)``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from landscape_pl.errors import LandscapeError
from landscape_pl.symmetry.spec import Axis, Group, PermutationSpec

Permutations = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Nested:
    """Group ``name`` lies inside unit ``unit`` of an outer group; per inner axis, the outer axis holding it.

    ``role``: where in a unit it lies (entry, dim, block, offset within the unit per axis): head k's
    query/key dims and head j's share a role.
    """

    name: str
    unit: int
    axes: tuple[tuple[Axis, Axis], ...]

    @property
    def role(self) -> tuple[tuple[str, int, int, int], ...]:
        return tuple((i.entry, i.dim, i.block, i.offset - o.offset - self.unit * o.block) for i, o in self.axes)


def holder(inner: Axis, size: int, outer: Group) -> tuple[int, Axis] | None:
    """(unit, axis) of ``outer`` whose block holds all of ``inner``'s span, if one does."""
    span = inner.span(size)
    for axis in outer.axes:
        if axis.entry == inner.entry and axis.dim == inner.dim and axis.block > 1:
            first, last = span.start - axis.offset, span.stop - 1 - axis.offset
            if 0 <= first and last < outer.size * axis.block and first // axis.block == last // axis.block:
                return first // axis.block, axis
    return None


def nesting(spec: PermutationSpec) -> dict[str, list[Nested]]:
    """Outer group name -> the groups nested in its units (each inner group under its first outer group)."""
    blocks: dict[tuple[str, int], list[int]] = {}  # (entry, dim) -> groups with blocks there: the candidate outers
    for i, group in enumerate(spec.groups):
        for axis in group.axes:
            if axis.block > 1:
                blocks.setdefault((axis.entry, axis.dim), []).append(i)
    result: dict[str, list[Nested]] = {}
    for j, inner in enumerate(spec.groups):
        candidates = blocks.get((inner.axes[0].entry, inner.axes[0].dim), []) if inner.axes else []
        for i in dict.fromkeys(i for i in candidates if i != j):
            outer = spec.groups[i]
            held = [holder(axis, inner.size, outer) for axis in inner.axes]
            if not all(held) or len({unit for unit, _ in held}) != 1:
                continue
            if j < i:
                raise LandscapeError(
                    f"permutation group {inner.name!r} lies inside the units of {outer.name!r} but comes first in the spec: "
                    f"list {outer.name!r} before it (permutations apply in the spec's order)"
                )
            result.setdefault(outer.name, []).append(Nested(inner.name, held[0][0], tuple(zip(inner.axes, (a for _, a in held)))))
            break
    return result


def permute_axis(value: torch.Tensor, axis: Axis, p: torch.Tensor) -> torch.Tensor:
    """``value`` with the units on ``axis.dim`` reordered by an index vector or mixed by a matrix."""
    n = p.shape[0]
    span = axis.span(n)
    if span.start > 0 or span.stop < value.shape[axis.dim]:  # a slice: permute it, keep the rest
        inside = permute_axis(value.narrow(axis.dim, span.start, span.stop - span.start), Axis(axis.entry, axis.dim, axis.block), p)
        before = value.narrow(axis.dim, 0, span.start)
        after = value.narrow(axis.dim, span.stop, value.shape[axis.dim] - span.stop)
        return torch.cat([before, inside, after], axis.dim)
    # (entries before the axis, units, each unit's block x entries after it): a view, so one pass over the
    # tensor reorders it (moving the axis to the front first cost two extra copies of a 100M-entry classifier)
    units = value.reshape(math.prod(value.shape[: axis.dim]), n, -1)
    if p.dim() == 1:
        units = units.index_select(1, p.to(units.device))
    else:
        units = p.to(units) @ units
    return units.reshape(value.shape)


def permute_entry(name: str, value: torch.Tensor, spec: PermutationSpec, perms: Permutations,
                  skip: Collection[str] = ()) -> torch.Tensor:
    """One state entry with every group that touches it applied, in the spec's order (except those in ``skip``,
    for weight matching)."""
    for axis, group in spec.axes_by_entry.get(name, ()):
        if group in perms and group not in skip:
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


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """One tensor under two names (a tied weight: ``lm_head.weight = wte.weight`` puts both in the state dict)."""
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype


def permute(state: Mapping[str, torch.Tensor], spec: PermutationSpec, perms: Permutations) -> dict[str, torch.Tensor]:
    """A new state dict with ``perms`` applied (pure: ``state`` is not changed; differentiable in soft P).

    A spec names a tied tensor once; its other names in ``state`` get the same permuted value, so that
    loading the result cannot overwrite the permuted entry with an unpermuted alias.
    """
    check_permutations(spec, perms)
    result = {name: permute_entry(name, value, spec, perms) for name, value in state.items()}
    named = [name for name in spec.axes_by_entry if name in state]
    for name, value in state.items():
        if name not in spec.axes_by_entry and value.numel():
            owner = next((n for n in named if same_tensor(state[n], value)), None)
            if owner is not None:
                result[name] = result[owner]
    return result


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


def inverse(perms: Permutations, spec: PermutationSpec | None = None) -> dict[str, torch.Tensor]:
    """Index permutations that undo ``perms``; nested groups (see ``nesting``) need the ``spec``.

    With outer p and a nested q_k at each unit k, B_k[r] = A_p[k][q_k[r]]; so the inverse has
    p' = argsort(p) and, at unit k, argsort of the nested permutation that sat at unit p'[k].
    """
    result = {name: torch.argsort(p) for name, p in perms.items()}
    for outer, inner in (nesting(spec) if spec is not None else {}).items():
        at = {(n.unit, n.role): n.name for n in inner}
        for n in inner if outer in perms else ():
            source = at.get((int(result[outer][n.unit]), n.role))
            if source is None:
                raise LandscapeError(f"group {n.name!r} has no counterpart in unit {int(result[outer][n.unit])} of {outer!r}: "
                                     "its inverse is not a permutation of this spec")
            result[n.name] = torch.argsort(perms.get(source, torch.arange(spec[n.name].size)))
    return result


def as_matrix(p: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The one-hot (n, n) matrix P with P[i, p[i]] = 1, which ``permute_axis`` treats exactly as ``p``."""
    return torch.eye(len(p), dtype=dtype)[p]


def to_lists(perms: Permutations) -> dict[str, list[int]]:
    """JSON-ready index lists (the file format of ``align``'s permutation.json)."""
    return {name: [int(i) for i in p.tolist()] for name, p in perms.items()}


def from_lists(lists: Mapping[str, list[int]]) -> dict[str, torch.Tensor]:
    return {name: torch.tensor(values, dtype=torch.long) for name, values in lists.items()}
