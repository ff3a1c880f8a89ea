"""Numbers read off a loss/accuracy profile along a path: barrier, monotonicity, local minima.

Pure functions over (t, loss, accuracy) arrays; non-finite losses are reported, never averaged in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def barrier(ts: np.ndarray, losses: np.ndarray) -> float:
    """max over t in [0, 1] of L(t) - ((1 - t) L(0) + t L(1)): the bump above the chord between the ends."""
    inside = (ts >= 0) & (ts <= 1)
    l0, l1 = np.interp(0.0, ts, losses), np.interp(1.0, ts, losses)
    chord = (1 - ts[inside]) * l0 + ts[inside] * l1
    return float(np.max(losses[inside] - chord))


def first_increase(ts: np.ndarray, losses: np.ndarray, tolerance: float = 0.0) -> float | None:
    """The first t in [0, 1] where the loss rises by more than ``tolerance`` over the previous grid point.

    None means the loss is monotonically non-increasing from start to end: the MLI property.
    """
    inside = (ts >= 0) & (ts <= 1)
    t_in, l_in = ts[inside], losses[inside]
    rises = np.nonzero(np.diff(l_in) > tolerance)[0]
    return float(t_in[rises[0] + 1]) if len(rises) else None


def local_minima(ts: np.ndarray, losses: np.ndarray) -> list[float]:
    """Every interior grid t where the loss is lower than its left neighbour and not above its right."""
    return [float(ts[i]) for i in range(1, len(ts) - 1) if losses[i] < losses[i - 1] and losses[i] <= losses[i + 1]]


def plateau_length(ts: np.ndarray, losses: np.ndarray, tolerance: float) -> float:
    """Share of [0, 1] from t = 0 over which the loss stays within ``tolerance`` of L(0)."""
    inside = (ts >= 0) & (ts <= 1)
    t_in, l_in = ts[inside], losses[inside]
    away = np.nonzero(np.abs(l_in - l_in[0]) > tolerance)[0]
    return float(t_in[away[0] - 1] - t_in[0]) if len(away) else float(t_in[-1] - t_in[0])


def summarize_profile(
    ts: Sequence[float], losses: Sequence[float], accuracies: Sequence[float | None], mli_tolerance: float = 0.0
) -> dict:
    """The summary of one split's profile; statistics use finite points only and say which were not.

    With no finite point strictly inside (0, 1), ``barrier`` and ``max_loss_0_1`` are None and a ``note``
    says why: the grid shows nothing of the path between its ends.
    """
    ts_all = np.asarray(ts, dtype=float)
    loss_all = np.asarray(losses, dtype=float)
    finite = np.isfinite(loss_all)
    summary: dict = {"points": int(len(ts_all)), "nonfinite_t": [float(t) for t in ts_all[~finite]]}
    t, loss = ts_all[finite], loss_all[finite]
    inside = (t >= 0) & (t <= 1)
    if inside.sum() < 2 or t.min() > 0 or t.max() < 1:
        summary["note"] = "fewer than two finite points cover [0, 1]; barrier and MLI need both ends"
        return summary
    between = bool(((t > 0) & (t < 1)).any())  # the ends alone say nothing of the path between them
    increase = first_increase(t, loss, mli_tolerance)
    summary |= {
        "loss_start": float(np.interp(0.0, t, loss)),
        "loss_end": float(np.interp(1.0, t, loss)),
        "barrier": barrier(t, loss) if between else None,
        "max_loss_0_1": float(loss[inside].max()) if between else None,
        "monotonic": increase is None,
        "first_increase_t": increase,
        "local_minima_t": local_minima(t, loss),
    }
    if not between:
        summary["note"] = ("no finite grid point lies strictly inside (0, 1): barrier and max_loss_0_1 are unknown "
                           "(null); evaluate t between the ends too (e.g. --points 11 on [0, 1])")
    acc = np.asarray([math.nan if a is None else a for a in accuracies], dtype=float)[finite]
    if not np.isnan(acc).all():
        summary |= {"min_accuracy_0_1": float(acc[inside].min()), "mean_accuracy_0_1": float(acc[inside].mean())}
    return summary
