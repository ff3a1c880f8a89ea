"""Full training states at chosen optimizer steps, for runs that branch off a parent run there.

Frankle et al. (2020) train a parent to step k and resume two children from its state at k (weights,
optimizer, schedule position): ``SpawnCheckpoints`` writes that state as an ordinary Lightning
checkpoint ``step=<k>.ckpt`` at each step k asked for (k = 0 is the initialization, before the first
step) and stops the run after the last one, since the parent is never needed beyond it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L

from landscape_pl.errors import LandscapeError
from landscape_pl.layout import spawn_name
from landscape_pl.modules.endpoint import checkpoint_dir

STATE_KEY = "SpawnCheckpoints"  # where a checkpoint keeps this callback's state (the run's length)


class SpawnCheckpoints(L.Callback):
    """Save the whole training state at each of ``steps`` (optimizer steps taken) into ``dirpath``
    (default: the run's checkpoints folder, beside its last.ckpt and init.ckpt).

    ``steps`` beyond the run's length (``Trainer.estimated_stepping_batches``: its max_epochs or
    max_steps, batch limits and accumulation included) are refused before the first step. The length
    is kept in every checkpoint's callback state (``total_steps``), so runs resumed from one know it.
    """

    def __init__(self, steps: Sequence[int], dirpath: str | None = None) -> None:
        if not steps or any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in steps):
            raise LandscapeError(f"spawn steps {list(steps)}: give optimizer steps as whole numbers >= 0 (0 is the initialization)")
        self.steps = sorted(set(steps))
        self.dirpath = None if dirpath is None else Path(dirpath)
        self.total_steps: int | None = None

    @property
    def state_key(self) -> str:
        return STATE_KEY

    def state_dict(self) -> dict:
        return {"total_steps": self.total_steps, "steps": self.steps}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.total_steps = int(trainer.estimated_stepping_batches)
        beyond = [k for k in self.steps if k > self.total_steps]
        if beyond:
            raise LandscapeError(f"spawn step k={beyond[0]} is beyond the parent's training length of {self.total_steps} "
                                 f"optimizer steps (its max_epochs x batches per epoch): give spawn steps up to {self.total_steps}")
        if trainer.global_step == 0 and 0 in self.steps:
            self.save(trainer, 0)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if step in self.steps:
            self.save(trainer, step)
        if step >= self.steps[-1]:
            trainer.should_stop = True

    def save(self, trainer: L.Trainer, step: int) -> None:
        trainer.save_checkpoint((self.dirpath or checkpoint_dir(trainer)) / spawn_name(step))
