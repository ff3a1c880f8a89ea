"""Parameters as a function of t: the straight line, and the base every curve shares.

A path is anchors plus coefficients c(t); θ(t) = Σ_k c_k(t) θ_k. Entries outside the moving
selection stay at a held network's values (what the MLI-plateau paper varies).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import torch

from landscape_pl.errors import LandscapeError
from landscape_pl.paths.anchors import Anchors, NetworkSlots, StateDict, weighted_sum

Selection = Literal["all", "weights", "biases"]


def select_names(state: StateDict, parameter_names: Sequence[str], move: str) -> list[str]:
    """Names of the entries that move: "all", "weights" (parameters not named *bias), "biases", or a regex.

    Buffers (BatchNorm statistics) move only with "all" or a pattern that names them.
    """
    params = set(parameter_names)
    if move == "all":
        return list(state)
    if move == "weights":
        return [n for n in state if n in params and not n.endswith("bias")]
    if move == "biases":
        return [n for n in state if n in params and n.endswith("bias")]
    try:
        pattern = re.compile(move)
    except re.error as err:
        raise LandscapeError(f"move={move!r} is neither all/weights/biases nor a valid regular expression: {err}") from None
    chosen = [n for n in state if pattern.search(n)]
    if not chosen:
        raise LandscapeError(f"move={move!r} matches no parameter; names look like {list(state)[:3]}")
    return chosen


class Path:
    """θ(t) = Σ_k c_k(t) θ_k over ``anchors``; subclasses define ``coefficients`` and the domain of t."""

    domain: tuple[float, float] | None = None

    def __init__(self, anchors: Anchors, moving: torch.Tensor | None = None, held: torch.Tensor | None = None) -> None:
        self.anchors = anchors
        self.moving, self.held = moving, held
        self.networks: tuple[int, ...] = tuple(range(len(anchors)))  # anchors that are trained networks
        self.mixing: torch.Tensor | None = None  # (networks, anchors): coefficients -> network weights

    def coefficients(self, t: float) -> torch.Tensor:
        raise NotImplementedError

    def made_of(self, networks: Sequence[int], mixing: Sequence[Sequence[float]]) -> Path:
        """Say which anchors are trained networks and how a point's coefficients share out among them
        (``mixing``: one row per network, one column per anchor); returns the path."""
        self.networks, self.mixing = tuple(networks), torch.tensor(mixing, dtype=torch.float64)
        return self

    def mixture(self, key) -> list[float]:
        """How much of each trained network (``networks``) the point ``key`` is made of: >= 0, summing to 1.

        What per-point statistics mix (REPAIR's target mean and std): the path's own coefficients on its
        networks, negative ones clipped to 0, so beyond an end of a line the nearer network counts alone.
        """
        c = self.coefficients(key).double()
        weights = (self.mixing @ c if self.mixing is not None else c[list(self.networks)]).clamp_min(0)
        if float(weights.sum()) <= 0:
            raise LandscapeError(f"the point {key} of {type(self).__name__} has no positive weight on any of its networks")
        return (weights / weights.sum()).tolist()

    def check(self, ts: Sequence[float]) -> None:
        """Refuse t outside the domain (a Bezier curve is defined on [0, 1] only)."""
        if self.domain is not None:
            low, high = self.domain
            bad = [t for t in ts if not low <= t <= high]
            if bad:
                raise LandscapeError(f"t={bad[0]} is outside [{low}, {high}], where {type(self).__name__} is defined")

    def write(self, slots: NetworkSlots, t) -> None:
        """Put θ(t) into the network behind ``slots``, fused when every entry moves."""
        if self.moving is None:
            slots.write_combination(list(self.anchors.matrix), self.coefficients(t).tolist())
        else:
            slots.write(self.point(t))

    def point(self, t: float) -> torch.Tensor:
        theta = weighted_sum(list(self.anchors.matrix), self.coefficients(t).tolist())
        if self.moving is not None:
            theta = torch.where(self.moving.to(theta.device), theta, self.held.to(theta))
        return theta


class Line(Path):
    """(1 - t) θ_start + t θ_end for any real t: t < 0 and t > 1 extrapolate."""

    def coefficients(self, t: float) -> torch.Tensor:
        return torch.tensor([1.0 - t, t])


def line(
    start: StateDict,
    end: StateDict,
    parameter_names: Sequence[str] = (),
    move: str = "all",
    hold: Literal["start", "end"] = "start",
    labels: Sequence[str] = ("start", "end"),
) -> Line:
    """The straight path from ``start`` to ``end``; entries outside ``move`` stay at the ``hold`` end."""
    if hold not in ("start", "end"):
        raise LandscapeError(f"hold must be 'start' or 'end', got {hold!r}")
    anchors = Anchors([start, end], labels)
    if move == "all":
        return Line(anchors)
    names = select_names(anchors.unflatten(anchors.matrix[0]), parameter_names, move)
    held = anchors.matrix[0 if hold == "start" else 1]
    return Line(anchors, anchors.mask(names), held)
