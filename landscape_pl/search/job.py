"""What both string algorithms share: the string, how to measure and train, the budgets, the outcome."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.models.base import build
from landscape_pl.search.probe import Probe
from landscape_pl.search.string import Bead, BeadString, Segment


@dataclass
class Budget:
    """When to give up: interior beads, depth of a bead, total training steps, rounds (constrained)."""

    beads: int
    depth: int
    steps: int | None = None
    rounds: int | None = None


def check_settings(threshold: float, alpha: float, points: int, budget: Budget, bead_steps: int, check_every: int) -> None:
    """Refuse settings no search can run with, before anything is trained or written (names as the command spells them)."""
    if not threshold > 0:
        raise LandscapeError(f"threshold={threshold}: L0 must be a loss level above 0")
    if not 0 < alpha < 1:
        raise LandscapeError(f"alpha={alpha}: beads are trained to alpha * L0 with 0 < alpha < 1, below L0 with room to spare")
    if points < 3:
        raise LandscapeError(f"points={points}: a segment needs at least 3 grid points to have an interior maximum")
    budgets = {"max_beads": budget.beads, "max_depth": budget.depth, "max_steps": budget.steps, "max_rounds": budget.rounds,
               "bead_steps": bead_steps, "check_every": check_every}
    for name, value in budgets.items():
        if value is not None and value <= 0:
            raise LandscapeError(f"{name}={value}: a budget of {value} leaves nothing to search with; give a positive number")


@dataclass
class Job:
    """A string search in progress. ``threshold`` is L0; beads are trained to ``alpha`` * L0."""

    string: BeadString
    probe: Probe
    datamodule: LandscapeDataModule
    optimizer: Callable
    budget: Budget
    threshold: float
    alpha: float
    insert_at: str
    bead_steps: int
    check_every: int
    seed: int
    accelerator: str = "auto"
    on_bead: Callable[[Bead], None] = lambda bead: None

    def segment(self, index: int) -> Segment:
        """The profile between beads ``index`` and ``index + 1``, from the cache or evaluated and cached."""
        cached = self.string.segment(index)
        if cached is None:
            left, right = self.string.beads[index], self.string.beads[index + 1]
            cached = self.probe.segment(self.string.state(left), self.string.state(right))
            self.string.segments[self.string.key(left, right)] = cached
            self.string.save()
        return cached

    def new_network(self) -> nn.Module:
        return build(self.string.spec)

    def steps_left(self) -> int | None:
        return None if self.budget.steps is None else self.budget.steps - self.string.progress["steps"]

    @property
    def next_id(self) -> int:
        return max(b.id for b in self.string.beads) + 1

    @property
    def root(self):
        return self.string.directory / "training"


def budget_spent(job: Job) -> str | None:
    """The reason no further bead may be added, or None."""
    if job.string.interior >= job.budget.beads:
        return f"bead budget spent ({job.budget.beads} beads)"
    left = job.steps_left()
    if left is not None and left <= 0:
        return f"training step budget spent ({job.budget.steps} steps)"
    return None
