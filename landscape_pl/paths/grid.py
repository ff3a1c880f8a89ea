"""Grids of t: the one place a path's evaluation points are spaced."""

from __future__ import annotations

import numpy as np

from landscape_pl.errors import LandscapeError


def t_grid(t_min: float, t_max: float, points: int) -> list[float]:
    """``points`` evenly spaced t from t_min to t_max (both included), rounded so 0 and 1 are exact."""
    if points < 2:
        raise LandscapeError(f"points={points}: a path needs at least 2 grid points")
    if not t_max > t_min:
        raise LandscapeError(f"t_max={t_max} must be greater than t_min={t_min}")
    return [round(float(t), 12) + 0.0 for t in np.linspace(t_min, t_max, points)]
