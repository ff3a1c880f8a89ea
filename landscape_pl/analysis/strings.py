"""Numbers read off a string of beads (DSS, Freeman & Bruna 2017): length, segment maxima, PCA axes.

Pure functions over a (K, P) matrix of flattened beads in string order and the loss profiles of its
K - 1 segments; nothing here trains or evaluates a network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def segment_lengths(beads: torch.Tensor) -> torch.Tensor:
    """Euclidean distance between each pair of neighbouring beads, (K - 1,)."""
    return (beads[1:] - beads[:-1]).norm(dim=1)


def normalized_length(beads: torch.Tensor) -> float:
    """Σ bead-to-bead distances / distance between the two ends: 1 for a straight string, more when it bends.

    The paper's measure of non-convexity: how far a low-loss path must detour relative to the chord.
    """
    chord = (beads[-1] - beads[0]).norm()
    if chord == 0:
        raise ValueError("the two ends of the string are the same point; the normalized length is undefined")
    return float(segment_lengths(beads.double()).sum() / chord.double())


def segment_maxima(profiles: Sequence[Sequence[float]]) -> list[float]:
    """The maximum interpolated loss of each segment (ends included), the number DSS compares with L0."""
    return [float(max(losses)) for losses in profiles]


def arc_positions(beads: torch.Tensor, ts: Sequence[float]) -> list[list[float]]:
    """For each segment, where its grid points lie along the whole string as a fraction of its length.

    Lets one profile of the whole string be drawn on [0, 1] with the ends at 0 and 1.
    """
    lengths = segment_lengths(beads.double())
    total = float(lengths.sum()) or 1.0
    starts = torch.cat([torch.zeros(1, dtype=torch.float64), lengths.cumsum(0)[:-1]])
    return [[(float(s) + t * float(l)) / total for t in ts] for s, l in zip(starts, lengths)]


def principal_axes(points: torch.Tensor, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and the top-``k`` principal axes (k, P) of the rows of ``points`` (appendix C's projection)."""
    mean = points.double().mean(dim=0)
    _, _, vh = torch.linalg.svd(points.double() - mean, full_matrices=False)
    axes = vh[:k]
    if axes.shape[0] < k:  # fewer points than axes: pad with zero axes so plots keep 3 coordinates
        axes = torch.cat([axes, axes.new_zeros(k - axes.shape[0], axes.shape[1])])
    return mean, axes


def project(points: torch.Tensor, mean: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """Coordinates of ``points`` (N, P) on ``axes`` about ``mean``: (N, k)."""
    return (points.double() - mean) @ axes.T
