"""Weight matching (Ainsworth et al. 2022, "Git Re-Basin"): align B to A without data.

Maximizes Σ_entries <θ_A, Pθ_B> by coordinate descent: for one group at a time, with the others
fixed, the objective is linear in that group's permutation, a linear assignment over the matrix
Σ_axes A_axis B_axisᵀ (units on rows: the axis's span, ``block`` entries per unit, everything else
flattened; A's side computed once). Sweeps over the groups repeat until one improves nothing.

What decides the optimum reached is the order of the groups in a sweep (bench/weight_matching.py,
random VGG16-BN pairs 0-2, gain over the identity): Git Re-Basin's seeded random order gains 117.2 on
average (114.4-118.8; on pair 0 118.4, 119.0, 119.6 for seeds 0-2), forward sweeps 118.4
(116.5-119.6), sweeps alternately forward and backward (the default) 119.1 (116.8-120.6; 120.6 on pair
0, where Git Re-Basin's algorithm reaches 118.4 and rebasin 120.5), in as many sweeps (28-34 against
18-51). Float64 products reach the same optimum (120.62) 1.7x slower; the improvement threshold only
moves the path (0: 120.38) unless it stops the descent early (1e-4: 118.61 after 10 sweeps).

A group nested in the units of another (an attention head's query/key or value dims inside the
heads group, whose axes have block = head dim) is solved jointly with it: for every pair (target
head k, source head j) the nested assignments are solved first and their best values enter the
outer assignment's cost; the step is exact for the outer group and its nested groups together.
Alone, the heads step would compare heads with their inner dims unmatched (inner products of
shuffled rows), and coordinate descent stalls far from a permuted copy's inverse.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from landscape_pl.errors import LandscapeError
from landscape_pl.symmetry.apply import identity, nesting, permute_entry
from landscape_pl.symmetry.spec import Axis, Group, PermutationSpec

LOG = logging.getLogger(__name__)
Order = Literal["alternate", "forward", "random"]
ORDERS = ("alternate", "forward", "random")
STATISTICS = ("running_mean", "running_var")
# Products are in PRODUCTS (float32: 1.7x faster than float64, same optimum on VGG16-BN): a change must gain more
# than this fraction of the objective's scale (Σ_i max_j |cost_ij|), or rounding would keep swapping near-equal
# permutations.
TOLERANCE = 1e-6
PRODUCTS = torch.float32


@dataclass
class WeightMatch:
    """What ``weight_matching`` found: the permutations, the sweeps it ran (the last one changes nothing),
    the objective's gain over the start (Σ <θ_A, Pθ_B> − Σ <θ_A, θ_B> over the matched entries, from the
    identity by default), and seconds taken."""

    permutations: dict[str, torch.Tensor]
    sweeps: int
    gain: float
    seconds: float


def assign(matrix: torch.Tensor) -> torch.Tensor:
    """The index permutation p maximizing Σ_i matrix[i, p[i]] (Hungarian algorithm, scipy)."""
    rows, columns = linear_sum_assignment(matrix.detach().double().cpu().numpy(), maximize=True)
    return torch.as_tensor(columns[np.argsort(rows)], dtype=torch.long)


def unit_rows(value: torch.Tensor, axis: Axis, units: int) -> torch.Tensor:
    """(units, block × rest): the axis's span of ``value``, ``block`` consecutive entries per unit."""
    span = axis.span(units)
    return value.narrow(axis.dim, span.start, span.stop - span.start).movedim(axis.dim, 0).reshape(units, -1).to(PRODUCTS)


def inside(rows: torch.Tensor, inner: Axis, outer: Axis, unit: int, size: int) -> torch.Tensor:
    """(outer units, size, rest): in every unit of ``outer`` (``rows`` from ``unit_rows``), the entries
    that ``inner`` covers in unit ``unit``."""
    start = inner.offset - outer.offset - unit * outer.block
    return rows.reshape(rows.shape[0], outer.block, -1)[:, start:start + size * inner.block].reshape(rows.shape[0], size, -1)


def joined(rows: Mapping[Axis, torch.Tensor], units: int) -> tuple[torch.Tensor, dict[Axis, slice]]:
    """Rows of several axes side by side (an empty group: one zero column), and each axis's columns."""
    columns, start = {}, 0
    for axis, part in rows.items():
        columns[axis], start = slice(start, start + part.shape[1]), start + part.shape[1]
    return (torch.cat(list(rows.values()), 1) if rows else torch.zeros(units, 1, dtype=PRODUCTS)), columns


class Matcher:
    """Coordinate descent's state: A's rows per group and axis, B, the spec, the permutations so far."""

    def __init__(self, state_a: Mapping[str, torch.Tensor], state_b: Mapping[str, torch.Tensor], spec: PermutationSpec,
                 chosen: set[str], start: Mapping[str, torch.Tensor], only: set[str]) -> None:
        self.state_b, self.spec = state_b, spec
        self.axes = {g.name: [a for a in g.axes if a.entry in chosen] for g in spec.groups}
        self.nested = {outer: [n for n in inner if n.name in only] for outer, inner in nesting(spec).items() if outer in only}
        solved_with = {n.name for inner in self.nested.values() for n in inner}
        self.steps = [g for g in spec.groups if g.name in only and g.name not in solved_with]
        self.rows_a = {g.name: joined({a: unit_rows(state_a[a.entry], a, g.size) for a in self.axes[g.name]}, g.size)
                       for g in self.steps}
        self.perms = identity(spec) | {name: p.cpu() for name, p in start.items()}
        # A step's cost depends only on the groups sharing its entries: while none of them changed since the
        # step last ran, it would find the same assignment again, so it is skipped (the result is the same).
        self.changes = dict.fromkeys(spec.names, 0)
        self.neighbours = {g.name: self.sharing(g) for g in self.steps}
        self.seen: dict[str, tuple[int, ...]] = {}

    def sharing(self, group: Group) -> list[str]:
        solved = {group.name, *(n.name for n in self.nested.get(group.name, []))}
        entries = {a.entry for name in solved for a in self.axes[name]}
        return sorted({other for e in entries for _, other in self.spec.axes_by_entry[e]} - solved)

    def step(self, group: Group) -> float:
        """Re-solve ``group`` (with the groups nested in it) given the others; the objective's gain (0: kept)."""
        seen = tuple(self.changes[name] for name in self.neighbours[group.name])
        if self.seen.get(group.name) == seen:
            return 0.0
        self.seen[group.name] = seen
        nested = self.nested.get(group.name, [])
        skip = {group.name, *(n.name for n in nested)}
        rows_a, columns = self.rows_a[group.name]
        parts = [unit_rows(permute_entry(a.entry, self.state_b[a.entry], self.spec, self.perms, skip), a, group.size) for a in columns]
        rows_b = torch.cat(parts, 1) if parts else rows_a  # no axes: A's one zero column, a zero cost
        cost = (rows_a @ rows_b.T).double()
        current, units = self.perms[group.name], torch.arange(group.size)
        old = cost[units, current].sum()
        found: dict[str, list[torch.Tensor]] = {}
        for n in nested:
            size = self.spec[n.name].size
            matrix = cost.new_zeros(group.size, size, size)  # source unit j -> inner cost
            for i_axis, o_axis in n.axes:
                if o_axis in columns:
                    a = inside(rows_a[:, columns[o_axis]], i_axis, o_axis, n.unit, size)[n.unit]
                    b = inside(rows_b[:, columns[o_axis]], i_axis, o_axis, n.unit, size)
                    matrix += torch.einsum("rx,jsx->jrs", a, b).double()
            found[n.name] = [assign(m) for m in matrix]
            rows, held = torch.arange(size), matrix.diagonal(dim1=1, dim2=2).sum(1)  # identity inside: counted in cost
            best = torch.stack([m[rows, p].sum() for m, p in zip(matrix, found[n.name])])
            old += matrix[current[n.unit]][rows, self.perms[n.name]].sum() - held[current[n.unit]]
            cost[n.unit] += best - held
        p = assign(cost)
        new = cost[units, p].sum()
        if new - old <= TOLERANCE * cost.abs().amax(1).sum():
            return 0.0
        for name, q in [(group.name, p), *((n.name, found[n.name][int(p[n.unit])]) for n in nested)]:
            if not torch.equal(q, self.perms[name]):
                self.perms[name], self.changes[name] = q, self.changes[name] + 1
        return float(new - old)


def visits(order: Order, steps: int, sweep: int, generator: torch.Generator) -> list[int]:
    """The steps of one sweep: spec order, alternately forward and backward, or seeded random."""
    if order == "random":
        return torch.randperm(steps, generator=generator).tolist()
    forward = list(range(steps))
    return forward[::-1] if order == "alternate" and sweep % 2 else forward


def weight_match(
    state_a: Mapping[str, torch.Tensor],
    state_b: Mapping[str, torch.Tensor],
    spec: PermutationSpec,
    entries: Iterable[str] | None = None,
    max_sweeps: int = 100,
    seed: int = 0,
    start: Mapping[str, torch.Tensor] | None = None,
    only: Iterable[str] | None = None,
    order: Order = "alternate",
) -> WeightMatch:
    """Index permutations of B's groups maximizing the inner product with A over ``entries``, and how it went.

    ``entries`` defaults to every permuted entry except BatchNorm running statistics (they are not
    weights, and ``align`` recomputes nothing from them). ``only`` names the groups to solve (default
    all); the others stay at ``start`` (default identity), as activation alignment's groups do.
    ``order`` of the groups in a sweep: ``alternate`` (forward, then backward, ...), ``forward``, or
    ``random`` (seeded by ``seed``, Git Re-Basin's).
    """
    if order not in ORDERS:
        raise LandscapeError(f"order={order!r}: use one of {', '.join(ORDERS)}")
    started = time.perf_counter()
    chosen = set(entries) if entries is not None else {e for e in spec.axes_by_entry if not e.endswith(STATISTICS)}
    matcher = Matcher(state_a, state_b, spec, chosen, start or {}, set(spec.names if only is None else only))
    generator = torch.Generator().manual_seed(seed)
    gain, sweeps = 0.0, 0
    while sweeps < max_sweeps:
        gains = [matcher.step(matcher.steps[i]) for i in visits(order, len(matcher.steps), sweeps, generator)]
        sweeps, gain = sweeps + 1, gain + sum(gains)
        if not any(gains):
            break
    seconds = time.perf_counter() - started
    LOG.info("weight matching: %d sweeps, objective gain %.4g, %.2f s", sweeps, gain, seconds)
    return WeightMatch(matcher.perms, sweeps, gain, seconds)


def match_weights(
    state_a: Mapping[str, torch.Tensor],
    state_b: Mapping[str, torch.Tensor],
    spec: PermutationSpec,
    entries: Iterable[str] | None = None,
    max_sweeps: int = 100,
    seed: int = 0,
    order: Order = "alternate",
) -> dict[str, torch.Tensor]:
    """The permutations of ``weight_matching`` alone."""
    return weight_match(state_a, state_b, spec, entries, max_sweeps, seed, order=order).permutations
