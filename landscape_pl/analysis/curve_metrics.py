"""The numbers the alignment paper reports for a learned curve, as pure functions of its profile.

Mean accuracy along the curve (its Table 2), minimum accuracy (Table 4), mean loss (the curve's
objective E_t L(r(t)); Table 5 reports the training loss at convergence) and the magnitude of the
Fourier transform of the loss along t (Figure 11: smaller high modes = a smoother curve). All
take a uniform grid of t on [0, 1], as the curve command evaluates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def inside(ts: Sequence[float], values: Sequence[float]) -> np.ndarray:
    """The values at t in [0, 1], in the order of t."""
    t, v = np.asarray(ts, dtype=float), np.asarray(values, dtype=float)
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    return v[(t >= 0) & (t <= 1)]


def mean_along(ts: Sequence[float], values: Sequence[float]) -> float:
    """Average over the grid points on [0, 1]: E_t over uniform t for a uniform grid."""
    return float(np.mean(inside(ts, values)))


def min_along(ts: Sequence[float], values: Sequence[float]) -> float:
    return float(np.min(inside(ts, values)))


def loss_spectrum(ts: Sequence[float], losses: Sequence[float]) -> list[float]:
    """|DFT| of the loss on the grid divided by the number of points, modes 0 .. n // 2 (Figure 11)."""
    values = inside(ts, losses)
    return [float(a) for a in np.abs(np.fft.rfft(values)) / len(values)]


def curve_numbers(ts: Sequence[float], losses: Sequence[float], accuracies: Sequence[float | None]) -> dict:
    """mean_loss, loss_spectrum and (classification) mean_accuracy, min_accuracy of one split."""
    numbers = {"mean_loss": mean_along(ts, losses), "loss_spectrum": loss_spectrum(ts, losses)}
    if all(a is not None for a in accuracies):
        numbers |= {"mean_accuracy": mean_along(ts, accuracies), "min_accuracy": min_along(ts, accuracies)}
    return numbers
