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


def project_doubly_stochastic(x: torch.Tensor, iterations: int = 20) -> torch.Tensor:
    """``iterations`` alternating projections onto the nonnegative matrices and onto unit row and column
    sums (the paper's 20), finished so that the result is exactly doubly stochastic.

    Alternating projections approach the intersection only slowly (hundreds of rounds for 128 units),
    so the last affine projection y, whose sums are 1, is mixed with the uniform matrix J/n (sums 1
    too) by the smallest weight that lifts its most negative entry to 0. Computed in float64.
    """
    n = x.shape[-1]
    y = x.detach().double()
    for _ in range(iterations):
        y = project_sums(y).clamp_min_(0)
    y = project_sums(y)
    deficit = max(0.0, -y.min().item()) * n
    y = (1 - deficit / (1 + deficit)) * y + deficit / (1 + deficit) / n
    return y.clamp_min_(0).to(x.dtype)

