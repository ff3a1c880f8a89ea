"""Two-dimensional slices of weight space: the plane through three networks, and random directions.

A plane point is θ = Σ_k c_k(x, y) θ_k over three anchors, with coefficients linear in (x, y): the
same Anchors/Path machinery as lines and curves, only the key is a coordinate pair. Through three
networks the axes are Gram-Schmidt orthonormal (Garipov et al. 2018; Tatro et al. 2020, Figures 3, 4,
6, 12, 13): θ1 at the origin, θ2 on the positive x axis, θ3 in the upper half. Around one network the
anchors are θ and two random filter-normalized directions (Li et al. 2018).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from landscape_pl.errors import LandscapeError
from landscape_pl.paths.anchors import Anchors, StateDict
from landscape_pl.paths.path import Path

Point = tuple[float, float]
COLLINEAR = 1e-6


class Plane(Path):
    """θ(x, y) = Σ_k (origin_k + x u_k + y v_k) θ_k: a point of the plane from its coordinates."""

    def __init__(self, anchors: Anchors, origin: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                 anchor_points: Sequence[Point], geometry: torch.Tensor | None = None) -> None:
        super().__init__(anchors)
        self.basis = torch.stack([origin, u, v]).double()
        self.anchor_points = [(float(x), float(y)) for x, y in anchor_points]
        self.geometry = geometry  # the entries distances are measured on (None: all)

    def coefficients(self, key: Point) -> torch.Tensor:
        x, y = key
        return (self.basis[0] + x * self.basis[1] + y * self.basis[2]).float()

    def project(self, theta: torch.Tensor) -> tuple[Point, float]:
        """Coordinates of a flat θ's projection onto the plane, and its distance from the plane."""
        matrix = self.anchors.matrix.double()
        if self.geometry is not None:
            matrix, theta = matrix[:, self.geometry], theta[self.geometry]
        origin, u, v = self.basis @ matrix
        offset = theta.double() - origin
        gram = torch.stack([u, v]) @ torch.stack([u, v]).T
        xy = torch.linalg.solve(gram, torch.stack([u, v]) @ offset)
        residual = offset - xy[0] * u - xy[1] * v
        return (float(xy[0]), float(xy[1])), float(residual.norm())


def plane_through(states: Sequence[StateDict], labels: Sequence[str], geometry: Sequence[str] | None = None) -> Plane:
    """The plane through three networks, axes by Gram-Schmidt over the ``geometry`` entries (default all).

    x = ⟨θ - θ1, e1⟩ with e1 = (θ2 - θ1)/|θ2 - θ1|, y along the part of θ3 - θ1 orthogonal to e1.
    Refuses coincident or collinear networks, which span no plane.
    """
    if len(states) != 3:
        raise LandscapeError(f"a plane needs exactly three networks, got {len(states)}: {list(labels)}")
    anchors = Anchors(states, labels)
    matrix = anchors.matrix.double()
    if geometry is not None:
        matrix = matrix[:, anchors.mask(geometry)]
    for i, j in ((0, 1), (0, 2), (1, 2)):
        if torch.equal(matrix[i], matrix[j]):
            raise LandscapeError(f"{labels[i]} and {labels[j]} are the same network (identical weights): they and "
                                 f"{labels[3 - i - j]} span no plane; choose three different networks")
    d2, d3 = matrix[1] - matrix[0], matrix[2] - matrix[0]
    a = float(d2.norm())
    b = float(d2 @ d3) / a
    height = float((d3 - b * d2 / a).norm())
    if height <= COLLINEAR * max(a, float(d3.norm())):
        raise LandscapeError(
            f"the three networks {list(labels)} are collinear ({labels[2]} lies on the line through {labels[0]} and "
            f"{labels[1]} within a relative {COLLINEAR:g}): they span no plane; choose a third network off that line"
        )
    e1 = torch.tensor([-1.0, 1.0, 0.0], dtype=torch.float64) / a
    e2 = (torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64) - b * e1) / height
    mask = None if geometry is None else anchors.mask(geometry)
    return Plane(anchors, torch.tensor([1.0, 0.0, 0.0]), e1, e2, [(0.0, 0.0), (a, 0.0), (b, height)], mask)


def filter_normalized(state: StateDict, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A Gaussian direction scaled filter by filter (each slice along dim 0) to the norm of the weights' filter.

    One-dimensional entries (biases, BatchNorm weights) and buffers get zero, as Li et al.'s default
    ('biasbn' ignored): BatchNorm statistics are recomputed at each point anyway.
    """
    direction = {}
    for name, value in state.items():
        if not torch.is_floating_point(value):
            continue
        if value.dim() <= 1:
            direction[name] = torch.zeros_like(value, dtype=torch.float32)
            continue
        noise = torch.randn(value.shape, generator=generator, dtype=torch.float32)
        weights = value.detach().float()
        filters = len(value)
        scale = weights.reshape(filters, -1).norm(dim=1) / noise.reshape(filters, -1).norm(dim=1).clamp_min(1e-12)
        direction[name] = noise * scale.view(filters, *[1] * (value.dim() - 1))
    return direction


def random_plane(state: StateDict, label: str, parameter_names: Sequence[str], seed: int = 0) -> Plane:
    """θ + x d1 + y d2 around ``state`` with two filter-normalized random directions (Li et al. 2018).

    Directions touch parameters only; coordinates are in units of the directions (x = 1: one filter
    norm along d1).
    """
    generator = torch.Generator().manual_seed(seed)
    params = set(parameter_names)
    moving = {n: v for n, v in state.items() if n in params}
    directions = []
    for _ in range(2):
        d = filter_normalized(moving, generator)
        directions.append({n: d.get(n, torch.zeros_like(v, dtype=torch.float32)) if torch.is_floating_point(v) else v
                           for n, v in state.items()})
    anchors = Anchors([state, *directions], [label, "direction 1", "direction 2"])
    return Plane(anchors, torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]),
                 [(0.0, 0.0)]).made_of([0], [[1.0, 0.0, 0.0]])  # every point is made of θ alone


def grid(plane: Plane, points: int, margin: float, span: float | None = None) -> tuple[list[float], list[float]]:
    """``points`` x ``points`` coordinates: the anchors' bounding box widened by ``margin`` of its size
    on every side, or [-span, span]^2 when ``span`` is given (random planes)."""
    if points < 2:
        raise LandscapeError(f"points={points}: a plane grid needs at least 2 points per axis")
    if margin < 0:
        raise LandscapeError(f"margin={margin} must be >= 0 (a share of the anchors' extent added on each side)")
    if span is not None:
        if span <= 0:
            raise LandscapeError(f"span={span} must be positive")
        axis = np.linspace(-span, span, points)
        return [float(v) for v in axis], [float(v) for v in axis]
    xy = np.array(plane.anchor_points)
    low, high = xy.min(axis=0), xy.max(axis=0)
    size = (high - low).max()
    low, high = low - margin * size, high + margin * size
    return ([float(v) for v in np.linspace(low[0], high[0], points)],
            [float(v) for v in np.linspace(low[1], high[1], points)])
