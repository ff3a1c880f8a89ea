"""Per-point fix-ups: what is done to a network after θ is written and before it is evaluated.

Every path, curve, plane, string and ensemble evaluates a point the same way: write θ, run the
fix-ups in order, then one evaluation pass per split. BatchNorm recomputation is the first fix-up;
a new one is one class with ``prepare`` (once per path) and ``apply`` (once per point), and every
analysis gets it (REPAIR, ``symmetry.repair``, is one: it needs the permutation groups). A ``Measure`` (the Hessian probe, ``paths.curvature``) changes
nothing: it runs after the fix-ups and returns numbers that become extra columns of the point's rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from torch import nn

from landscape_pl.paths.batchnorm import has_batchnorm, recompute_batchnorm

if TYPE_CHECKING:
    from landscape_pl.paths.path import Path


class Fixup(Protocol):
    def prepare(self, network: nn.Module, path: "Path | None") -> None:
        """Once per walk, before the first point (endpoint statistics, data subsets); ``path`` is the
        path walked (its anchors and ``mixture``), None when points come from elsewhere."""

    def apply(self, network: nn.Module, key: Any) -> None:
        """At each point, with θ(key) already written into ``network``."""


class Measure(Protocol):
    """Numbers taken at each point after its fix-ups (curvature): they become extra columns of its rows."""

    def prepare(self, network: nn.Module) -> None:
        """Once per walk, before the first point."""

    def measure(self, network: nn.Module, key: Any) -> dict[str, float]:
        """At each point, after the fix-ups: named numbers for every row of the point."""


@dataclass
class RecomputeBatchNorm:
    """BatchNorm running statistics recomputed for each point (appendix C of the alignment paper).

    ``batches``: None is one full pass over ``data``; networks without BatchNorm are left alone.
    """

    data: Iterable
    batches: int | None = None

    def prepare(self, network: nn.Module, path: "Path | None") -> None:
        pass

    def apply(self, network: nn.Module, key: Any) -> None:
        if has_batchnorm(network):
            recompute_batchnorm(network, self.data, self.batches)
