"""Weight matching (Ainsworth et al. 2022, "Git Re-Basin"): align B to A without data.

Maximizes Σ_entries <θ_A, Pθ_B> by coordinate descent: for one group at a time, with the others
fixed, the objective is linear in that group's permutation, a linear assignment over the matrix
Σ_axes A_axis B_axisᵀ (units on rows, everything else flattened: one product of the group's
axes side by side, A's side computed once). Groups are visited in a seeded random order until a
full sweep improves nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

from landscape_pl.symmetry.activation import assign
from landscape_pl.symmetry.apply import identity, permute_entry
from landscape_pl.symmetry.spec import PermutationSpec

STATISTICS = ("running_mean", "running_var")
# Products are float32 (4x faster than float64 on VGG): a change must gain more than this fraction of the
# objective's scale (Σ_i max_j |cost_ij|), or rounding would keep swapping near-equal permutations.
TOLERANCE = 1e-6


def unit_rows(value: torch.Tensor, dim: int, units: int) -> torch.Tensor:
    return value.movedim(dim, 0).reshape(units, -1).float()


def match_weights(
    state_a: Mapping[str, torch.Tensor],
    state_b: Mapping[str, torch.Tensor],
    spec: PermutationSpec,
    entries: Iterable[str] | None = None,
    max_sweeps: int = 100,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Index permutations of B's groups maximizing the inner product with A over ``entries``.

    ``entries`` defaults to every permuted entry except BatchNorm running statistics (they are not
    weights, and ``align`` recomputes nothing from them).
    """
    chosen = set(entries) if entries is not None else {e for e in spec.axes_by_entry if not e.endswith(STATISTICS)}
    axes = {g.name: [a for a in g.axes if a.entry in chosen] for g in spec.groups}
    rows_a = {g.name: torch.cat([unit_rows(state_a[a.entry], a.dim, g.size) for a in axes[g.name]], 1) for g in spec.groups}
    perms = identity(spec)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(max_sweeps):
        improved = False
        for index in torch.randperm(len(spec.groups), generator=generator).tolist():
            group = spec.groups[index]
            rows_b = torch.cat([unit_rows(permute_entry(a.entry, state_b[a.entry], spec, perms, skip=group.name), a.dim, group.size)
                                for a in axes[group.name]], 1)
            cost = rows_a[group.name] @ rows_b.T
            p = assign(cost)
            rows = torch.arange(group.size)
            old, new = cost[rows, perms[group.name]].double().sum(), cost[rows, p].double().sum()
            if new - old > TOLERANCE * cost.abs().amax(1).double().sum():
                perms[group.name], improved = p, True
        if not improved:
            break
    return perms
