"""Training beads with the Lightning Trainer until their loss is below a target (line 8 of algorithm 1).

Beads are many and small, so the Trainer runs lean (no logger, checkpoints, progress bar or summary)
and a callback stops it as soon as the loss on the criterion split is below the target. Each training
run is seeded from the bead alone, so a resumed string trains its next bead exactly as an
uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from landscape_pl.console import quiet_lightning
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.paths.evaluate import Evaluation

Measure = Callable[[torch.nn.Module], float]


def measure_with(evaluation: Evaluation) -> Measure:
    """The loss of a network on the evaluation's (single) split, leaving its train/eval mode as it was."""

    def measure(network: torch.nn.Module) -> float:
        was_training = network.training
        loss = evaluation.at(network, None)[0].loss
        network.train(was_training)
        return loss

    return measure


class StopBelow(Callback):
    """Stop training once ``measure(network) < target``, checked every ``every`` optimizer steps."""

    def __init__(self, measure: Measure, target: float, every: int) -> None:
        self.measure, self.target, self.every = measure, target, every
        self.loss = float("inf")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if trainer.global_step % self.every == 0 or trainer.global_step >= trainer.max_steps:
            self.loss = self.measure(pl_module)
            if self.loss < self.target:
                trainer.should_stop = True


def reseed_data(datamodule: LandscapeDataModule, seed: int) -> None:
    """Restart the data order from ``seed`` (public state API), so each training run is reproducible."""
    datamodule.load_state_dict({"order": torch.Generator().manual_seed(seed).get_state()})


def fit(
    module: L.LightningModule,
    datamodule: LandscapeDataModule,
    max_steps: int,
    seed: int,
    root: Path,
    accelerator: str = "auto",
    callbacks: list[Callback] = (),
) -> int:
    """Train ``module`` for at most ``max_steps`` steps with a lean Trainer; returns the steps taken."""
    L.seed_everything(seed, verbose=False)
    reseed_data(datamodule, seed)
    with quiet_lightning(info=False):
        trainer = L.Trainer(
            max_steps=max_steps, max_epochs=-1, accelerator=accelerator, devices=1, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            limit_val_batches=0, num_sanity_val_steps=0, default_root_dir=str(root), callbacks=list(callbacks),
        )
        trainer.fit(module, datamodule=datamodule)
    return trainer.global_step


def train_bead(
    network: torch.nn.Module,
    datamodule: LandscapeDataModule,
    task: str,
    optimizer: Callable,
    measure: Measure,
    target: float,
    max_steps: int,
    check_every: int,
    seed: int,
    root: Path,
    accelerator: str = "auto",
) -> tuple[int, float]:
    """Train one bead (an EndpointModule on ``network``) until its loss is below ``target``.

    Returns (steps taken, final loss). A bead already below the target is not trained at all.
    """
    from landscape_pl.modules.endpoint import EndpointModule

    loss = measure(network)
    if loss < target or max_steps <= 0:
        return 0, loss
    stop = StopBelow(lambda module: measure(module.network), target, check_every)
    steps = fit(EndpointModule(network, task=task, optimizer=optimizer), datamodule, max_steps, seed, root, accelerator, [stop])
    network.cpu()
    return steps, measure(network)
