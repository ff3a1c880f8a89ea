"""How every analysis evaluates its points, as one settings object built in one place.

It sits above ``paths`` and ``symmetry`` because it puts both together: the points' evaluation
(``paths``) with REPAIR, which needs each network's permutation groups (``symmetry``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from landscape_pl.data.subsets import training_subset
from landscape_pl.devices import device
from landscape_pl.paths.curvature import HessianProbe, HessianSettings, hessian_settings
from landscape_pl.paths.evaluate import Evaluation
from landscape_pl.paths.fixups import Fixup, RecomputeBatchNorm
from landscape_pl.symmetry.repair import Repair
from landscape_pl.tasks import Task, get_task


@dataclass
class EvalSettings:
    """Splits to report, BatchNorm recomputation, device, progress bars, and extra per-point fix-ups.

    Args:
        splits: data splits every point is evaluated on.
        bn_batches: training batches BatchNorm statistics are recomputed on at each point; None is
            one full pass, 0 is off (networks without BatchNorm are never touched).
        accelerator: cpu, cuda, gpu, auto, or a torch.device.
        progress: show progress bars.
        fixups: further per-point fix-ups, run after BatchNorm recomputation.
        repair: REPAIR at each point after BatchNorm recomputation (``symmetry.repair``): every hidden unit
            given the mixture of the path's networks' mean and std, measured on ``bn_batches``
            training batches (all when None or 0).
        hessian: curvature measured at each point after the fix-ups (HessianSettings, a dict of its
            fields, or None for none): extra columns of every row.
    """

    splits: Sequence[str] = ("train", "test")
    bn_batches: int | None = None
    accelerator: str | torch.device = "auto"
    progress: bool = True
    fixups: Sequence[Fixup] = field(default_factory=list)
    hessian: HessianSettings | dict | None = None
    repair: bool = False

    def __post_init__(self) -> None:
        self.hessian = hessian_settings(self.hessian)

    @property
    def device(self) -> torch.device:
        return device(self.accelerator)

    def repairs(self, bn_data: Any) -> list[Fixup]:
        """REPAIR, when asked for, on the same training batches as RESET (which the Evaluation runs first)."""
        if not self.repair:
            return []
        reset = RecomputeBatchNorm(bn_data, self.bn_batches) if self.bn_batches != 0 else None
        return [Repair(bn_data, self.bn_batches or None, reset=reset)]

    def evaluation(self, data: Any, task: Task | str | None = None, splits: Sequence[str] | None = None) -> Evaluation:
        """The Evaluation of these settings on a data module (anything with ``eval_dataloader(split)``)."""
        task = get_task(task or data.task) if not isinstance(task, Task) else task
        bn_data = data.eval_dataloader("train")
        return Evaluation(
            splits={split: data.eval_dataloader(split) for split in (splits or self.splits)},
            task=task,
            bn_data=bn_data,
            bn_batches=self.bn_batches,
            progress=self.progress,
            fixups=self.repairs(bn_data) + list(self.fixups),
            measures=[] if self.hessian is None else [HessianProbe(
                self.hessian, training_subset(data, self.hessian.subset, self.hessian.seed, "hessian subset"), task)],
        )
