"""The convex relaxation of permutations that PAM optimizes over.

Doubly stochastic matrices (nonnegative, rows and columns summing to 1) are the convex hull of
permutation matrices (Birkhoff), so projected gradient steps stay in a set whose extreme points are
the permutations; ``activation.assign`` (linear assignment) rounds a point back to the nearest one.
"""

from __future__ import annotations

import torch


def project_sums(x: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto the affine set of square matrices whose rows and columns sum to 1.

    Closed form of min ||y - x|| s.t. y1 = 1, yᵀ1 = 1: y = x + a1ᵀ + 1bᵀ with a, b fixed by the sums.
    """
    n = x.shape[-1]
    ones = torch.ones(n, 1, dtype=x.dtype, device=x.device)
    row_gap = 1 - x.sum(dim=1, keepdim=True)  # (n, 1)
    col_gap = 1 - x.sum(dim=0, keepdim=True)  # (1, n)
    total_gap = row_gap.sum()  # = n - sum(x)
    return x + row_gap / n + col_gap / n - total_gap / n**2 * (ones @ ones.T)


def project_doubly_stochastic(
    x: torch.Tensor, iterations: int = 20, tolerance: float = 1e-6, max_iterations: int = 10_000
) -> torch.Tensor:
    """Alternating projections onto the nonnegative matrices and onto unit row/column sums.

    At least ``iterations`` rounds (the paper's 20), then more until the row and column sums are
    within ``tolerance`` of 1: the result is exactly nonnegative and doubly stochastic to tolerance.
    """
    y = x.detach().clone()
    for round_ in range(max_iterations):
        y = project_sums(y).clamp_min_(0)
        if round_ + 1 >= iterations and sum_violation(y) <= tolerance:
            break
    return y


def sum_violation(x: torch.Tensor) -> float:
    """Largest deviation of a row or column sum from 1."""
    return max((x.sum(0) - 1).abs().max().item(), (x.sum(1) - 1).abs().max().item())

