"""The Hessian measured at every point a path evaluates: top eigenvalues and trace as extra columns.

A measurement runs after the point's fix-ups (BatchNorm statistics recomputed for this θ), with the
network in eval mode, on a fixed seeded subset of the training data: the same examples at every
point and on every rank, and random vectors seeded afresh at each point, so a point's numbers do not
depend on which rank took it or what was evaluated before it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from landscape_pl.analysis.hessian import Objective, check_differentiable, hutchinson_trace, top_eigenvalues
from landscape_pl.errors import LandscapeError
from landscape_pl.tasks import Task


@dataclass
class HessianSettings:
    """Curvature at every point, on a fixed seeded subset of the training data.

    Args:
        top_k: largest Hessian eigenvalues to report (Lanczos); 0 for none.
        trace_samples: Rademacher vectors of Hutchinson's trace estimate (with its standard error); 0 for none.
        subset: training examples the loss is taken over (seeded: the same at every point and rank).
        seed: seeds the subset and, at each point, the random vectors.
        iterations: most Lanczos steps for the eigenvalues.
        tolerance: relative Ritz residual at which the eigenvalues count as converged.
    """

    top_k: int = 1
    trace_samples: int = 0
    subset: int = 256
    seed: int = 0
    iterations: int = 20
    tolerance: float = 1e-3

    def __post_init__(self) -> None:
        if self.top_k < 0 or self.trace_samples < 0:
            raise LandscapeError(f"hessian top_k={self.top_k}, trace_samples={self.trace_samples}: both must be >= 0")
        if self.top_k == 0 and self.trace_samples == 0:
            raise LandscapeError("hessian with top_k=0 and trace_samples=0 measures nothing: ask for one of them, or pass no hessian")
        if self.top_k and self.iterations < self.top_k:
            raise LandscapeError(f"hessian iterations={self.iterations} must be at least top_k={self.top_k}")
        if self.tolerance <= 0:
            raise LandscapeError(f"hessian tolerance={self.tolerance} must be positive")

    @property
    def columns(self) -> list[str]:
        """The extra columns every point gets, in order."""
        return [f"hessian_eig_{i + 1}" for i in range(self.top_k)] + (["hessian_trace", "hessian_trace_se"] if self.trace_samples else [])


def hessian_settings(value: HessianSettings | Mapping[str, Any] | None) -> HessianSettings | None:
    """HessianSettings as given, from a dict of its fields (unknown keys named), or None."""
    if value is None or isinstance(value, HessianSettings):
        return value
    if not isinstance(value, Mapping):
        raise LandscapeError(f"hessian must be HessianSettings, a dict of its fields or None, got {type(value).__name__}")
    known = [f.name for f in fields(HessianSettings)]
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise LandscapeError(f"hessian has unknown keys {unknown}; the keys are {known}")
    return HessianSettings(**value)


class HessianProbe:
    """The per-point measurement of ``settings`` on ``batches`` (the seeded training subset)."""

    def __init__(self, settings: HessianSettings, batches: Iterable, task: Task) -> None:
        self.settings, self.data, self.task = settings, batches, task
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []

    def prepare(self, network: nn.Module) -> None:
        """Move the subset to the network's device once per walk, and refuse a network without a Hessian."""
        device = next(network.parameters()).device
        self.batches = [(x.to(device), y.to(device)) for x, y in self.data]
        network.eval()
        check_differentiable(self.objective(network))

    def objective(self, network: nn.Module) -> Objective:
        return Objective(network, self.batches, self.task.summed_loss)

    def measure(self, network: nn.Module, key: Any) -> dict[str, float]:
        settings = self.settings
        network.eval()  # BatchNorm at the statistics just recomputed, no dropout
        objective = self.objective(network)
        generator = torch.Generator().manual_seed(settings.seed)
        numbers: dict[str, float] = {}
        if settings.top_k:
            found = top_eigenvalues(objective, settings.top_k, settings.iterations, settings.tolerance, generator)
            if not found.converged:
                warnings.warn(f"at {key}: the top {settings.top_k} Hessian eigenvalues did not converge to tolerance "
                              f"{settings.tolerance:g} in {found.steps} Lanczos steps; raise hessian iterations", stacklevel=2)
            numbers |= {f"hessian_eig_{i + 1}": value for i, value in enumerate(found.values)}
        if settings.trace_samples:
            mean, error = hutchinson_trace(objective, settings.trace_samples, generator)
            numbers |= {"hessian_trace": mean, "hessian_trace_se": error}
        return numbers


def described(settings: HessianSettings | None) -> dict:
    """``{"hessian": settings}`` as plain data for a summary, or nothing when no Hessian was asked for."""
    return {} if settings is None else {"hessian": asdict(settings)}
