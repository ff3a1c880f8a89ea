"""Numbers of the stability analysis (Frankle et al. 2020): the error barrier between two networks and
the first spawn step whose children are linearly connected.

Pure functions over arrays, beside ``analysis.profile`` (whose ``barrier`` is the loss's bump above the
chord between the ends).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def error_barrier(ts: Sequence[float], errors: Sequence[float]) -> float:
    """Frankle et al.'s instability: max over t in [0, 1] of error(t) minus the mean of the two ends' errors.

    The paper subtracts the mean of the ends, not the chord (1 - t) e(0) + t e(1) that ``profile.barrier``
    uses; the two differ by at most half the gap between the ends' errors. Keeping the paper's
    definition keeps its numbers and its 2% threshold comparable, and it is exactly 0 when both ends
    are one network (the mean of two equal numbers is that number, a chord in floating point is not).
    """
    t, e = np.asarray(ts, dtype=float), np.asarray(errors, dtype=float)
    inside = (t >= 0) & (t <= 1)
    ends = (float(np.interp(0.0, t, e)) + float(np.interp(1.0, t, e))) / 2
    return float(e[inside].max() - ends)


def stable_from(steps: Sequence[int], barriers: Sequence[float | None], threshold: float) -> int | None:
    """The first spawn step (in increasing order) whose barrier is below ``threshold``; None if none is."""
    for step, value in sorted(zip(steps, barriers)):
        if value is not None and value < threshold:
            return int(step)
    return None
