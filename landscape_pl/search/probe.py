"""Losses the string search needs: of one bead, and along the straight segment between two beads.

Both go through the project's one evaluation mechanism (``Evaluation.at`` / ``Evaluation.points`` over
``paths.line``), on one criterion split whose batches are read once and kept, so evaluating a segment
costs (grid points x one evaluation pass) and little more.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.paths import Evaluation, has_batchnorm, line
from landscape_pl.search.string import Segment
from landscape_pl.search.training import measure_with
from landscape_pl.tasks import get_task


class Probe:
    """Evaluates beads and segments on ``split`` of ``datamodule``, in a scratch copy of the architecture."""

    def __init__(self, datamodule: LandscapeDataModule, split: str, scratch: nn.Module, ts: Sequence[float],
                 bn_batches: int | None = None, progress: bool = False) -> None:
        batches = list(datamodule.eval_dataloader(split))
        bn_data = None  # no per-point BatchNorm check for networks without BatchNorm (most DSS nets)
        if has_batchnorm(scratch):
            bn_data = batches if split == "train" else list(datamodule.eval_dataloader("train"))
        self.evaluation = Evaluation({split: batches}, get_task(datamodule.task), bn_data, bn_batches, progress)
        self.split, self.scratch, self.ts = split, scratch, list(ts)
        self.loss = measure_with(self.evaluation)

    def segment(self, left: dict, right: dict) -> Segment:
        """The interpolated loss (1 - t) θ_left + t θ_right on the grid."""
        path = line(left, right, labels=("left bead", "right bead"))
        points = dict(zip(self.ts, path.anchors.combine(torch.tensor([[1 - t, t] for t in self.ts]))))  # one matmul
        rows = self.evaluation.points(self.scratch, path.anchors.names, self.ts, points.__getitem__, desc="segment")
        return Segment(self.ts, [row.loss for row in rows])

    def between(self, left: dict, right: dict, t: float) -> dict:
        """The state dict at (1 - t) θ_left + t θ_right (non-float entries from the left bead)."""
        path = line(left, right, labels=("left bead", "right bead"))
        state = dict(left) | path.anchors.unflatten(path.point(t))
        return {k: v.clone() for k, v in state.items()}
