"""Curves on [0, 1] between two networks: Bezier curves of any degree and polygonal chains.

Both are θ(t) = Σ_k c_k(t) θ_k over anchors [θ_start, control points..., θ_end]; only the
coefficients differ. ``basis`` gives them for many t at once (a (T, K) matrix), which is what
training with one t per group of examples and evaluation on a grid need.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

from landscape_pl.errors import LandscapeError
from landscape_pl.paths.anchors import Anchors, StateDict
from landscape_pl.paths.path import Path

CurveKind = Literal["bezier", "polychain"]


def bernstein(ts: torch.Tensor, degree: int) -> torch.Tensor:
    """(T, degree + 1) Bernstein polynomials C(n, k) t^k (1 - t)^(n - k); exact 0/1 at the ends."""
    k = torch.arange(degree + 1, dtype=torch.float64)
    t = ts.to(torch.float64).reshape(-1, 1)
    binomial = torch.tensor([math.comb(degree, int(i)) for i in k], dtype=torch.float64)
    return (binomial * t.pow(k) * (1 - t).pow(degree - k)).float()


def hats(ts: torch.Tensor, bends: int) -> torch.Tensor:
    """(T, bends + 2) piecewise-linear weights of a chain with knots at k / (bends + 1)."""
    k = torch.arange(bends + 2, dtype=torch.float64)
    x = ts.to(torch.float64).reshape(-1, 1) * (bends + 1)
    return (1 - (x - k).abs()).clamp(min=0).float()


class Curve(Path):
    """A path on [0, 1] through its first and last anchor; ``weights`` (the basis) defines the shape."""

    domain = (0.0, 1.0)
    requirement = "a curve needs its two ends"

    def __init__(self, anchors: Anchors, moving: torch.Tensor | None = None, held: torch.Tensor | None = None) -> None:
        if len(anchors) < 2:
            raise LandscapeError(f"{self.requirement} (at least 2 anchors), got {len(anchors)} anchors")
        super().__init__(anchors, moving, held)
        self.networks = (0, len(anchors) - 1)  # control points are not networks

    def mixture(self, t: float) -> list[float]:
        """The ends' share at ``t``: (1 - t, t), whatever the control points (they are not trained networks)."""
        return [1.0 - float(t), float(t)]

    @staticmethod
    def weights(ts: torch.Tensor, anchors: int) -> torch.Tensor:
        """(T, anchors) coefficients at each t."""
        raise NotImplementedError

    @staticmethod
    def controls(degree: int, bends: int) -> int:
        """Control points between the ends for these settings (errors name the bad one)."""
        raise NotImplementedError

    def basis(self, ts: torch.Tensor) -> torch.Tensor:
        return self.weights(ts, len(self.anchors))

    def coefficients(self, t: float) -> torch.Tensor:
        return self.basis(torch.tensor([float(t)]))[0]


class Bezier(Curve):
    """Bezier curve of degree K - 1 (quadratic with one control point: equation 7 of the alignment paper)."""

    requirement = "a Bezier curve needs degree >= 1"

    @staticmethod
    def weights(ts: torch.Tensor, anchors: int) -> torch.Tensor:
        return bernstein(ts, anchors - 1)

    @staticmethod
    def controls(degree: int, bends: int) -> int:
        if degree < 1:
            raise LandscapeError(f"degree={degree}: a Bezier curve needs degree >= 1 (1 is the straight line)")
        return degree - 1


class PolyChain(Curve):
    """Polygonal chain through K - 2 bends placed at t = k / (K - 1) (Garipov et al.'s PolyChain)."""

    requirement = "a polygonal chain needs bends >= 0"

    @staticmethod
    def weights(ts: torch.Tensor, anchors: int) -> torch.Tensor:
        return hats(ts, anchors - 2)

    @staticmethod
    def controls(degree: int, bends: int) -> int:
        if bends < 0:
            raise LandscapeError(f"bends={bends}: a polygonal chain needs bends >= 0 (0 is the straight line)")
        return bends


CURVES: dict[str, type[Curve]] = {"bezier": Bezier, "polychain": PolyChain}


def curve_class(kind: str) -> type[Curve]:
    """The registered curve class of ``kind``; an unknown kind is an error listing the known ones."""
    if kind not in CURVES:
        raise LandscapeError(f"curve={kind!r} is unknown; choose one of {sorted(CURVES)}")
    return CURVES[kind]


def basis(kind: CurveKind, anchors: int, ts: torch.Tensor) -> torch.Tensor:
    """(T, anchors) coefficients of a ``kind`` curve with ``anchors`` anchors at each t."""
    return curve_class(kind).weights(ts, anchors)


def control_count(kind: CurveKind, degree: int = 2, bends: int = 1) -> int:
    """Number of control points between the ends: degree - 1 for Bezier, ``bends`` for a chain."""
    return curve_class(kind).controls(degree, bends)


def on_segment(start: torch.Tensor, end: torch.Tensor, controls: int) -> torch.Tensor:
    """(controls, P) points at k / (controls + 1) of the way from start to end.

    For both kinds this makes the curve the straight line θ(t) = (1 - t) θ_start + t θ_end
    (Bernstein polynomials reproduce linear functions; the chain's knots are where its bends are).
    """
    fractions = torch.arange(1, controls + 1, dtype=start.dtype, device=start.device) / (controls + 1)
    return start + fractions[:, None] * (end - start)


def curve(
    start: StateDict,
    end: StateDict,
    kind: CurveKind = "bezier",
    degree: int = 2,
    bends: int = 1,
    controls: Sequence[StateDict] | None = None,
    labels: Sequence[str] = ("start", "end"),
) -> Curve:
    """A curve from ``start`` to ``end`` with control points given, or evenly on the straight segment."""
    count = control_count(kind, degree, bends)
    ends = Anchors([start, end], labels)
    if controls is None:
        middle = on_segment(ends.matrix[0], ends.matrix[1], count)
    else:
        if len(controls) != count:
            raise LandscapeError(f"{kind} with degree={degree}, bends={bends} needs {count} control points, got {len(controls)}")
        middle = Anchors([start, *controls], [labels[0], *(f"control {k}" for k in range(count))]).matrix[1:]
    ends.matrix = torch.cat([ends.matrix[:1], middle, ends.matrix[1:]])
    return curve_class(kind)(ends)
