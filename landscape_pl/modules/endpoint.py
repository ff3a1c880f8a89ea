"""Training one network: the endpoints every path, curve and string starts from."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from landscape_pl.models.base import Architecture, Spec, build, describe
from landscape_pl.tasks import get_task


def given_spec(name: str) -> Spec | None:
    """The config a LightningCLI run built ``name`` from, if any (how a user's own nn.Module gets a spec)."""
    from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

    given = _given_hyperparameters.get() or {}
    value = given.get(name)
    return value if isinstance(value, dict) and "class_path" in value else None


def reinitialize(network: nn.Module, seed: int) -> None:
    """Reset every layer's parameters from ``seed`` alone, independent of the global RNG and data order;
    then an Architecture's own ``initialize()`` (an init scheme over its layers, e.g. MLP's He init)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in network.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        if isinstance(network, Architecture):
            network.initialize()


class EndpointModule(L.LightningModule):
    """Trains ``network`` on the data module's task; saves its initialization as ``init.ckpt``.

    Args:
        network: the architecture (``class_path`` + ``init_args`` in a config).
        task: "classification" or "regression"; None takes the data module's task at setup.
        optimizer: e.g. ``torch.optim.SGD`` with ``lr``, ``momentum``, ``weight_decay``.
        lr_scheduler: e.g. ``torch.optim.lr_scheduler.StepLR`` (step_size 20, gamma 0.5), stepped per epoch.
        init_seed: seed of the network's initialization alone; None keeps the global seed's draw.
    """

    def __init__(
        self,
        network: nn.Module,
        task: str | None = None,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
        init_seed: int | None = None,
    ) -> None:
        super().__init__()
        spec = network if isinstance(network, dict) else given_spec("network")
        self.network = build(network) if isinstance(network, dict) else network
        if init_seed is not None:
            reinitialize(self.network, init_seed)
        self.save_hyperparameters(ignore=["network", "optimizer", "lr_scheduler"])
        self.hparams["network"] = describe(self.network, spec)
        self.task = get_task(task) if task else None
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler

    def setup(self, stage: str) -> None:
        """Adopt the data module's task unless one was given (a regression config needs no extra key)."""
        datamodule_task = getattr(self.trainer.datamodule, "task", None)
        if self.task is None:
            self.task = get_task(datamodule_task or "classification")
        self.hparams["task"] = self.task.name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def _step(self, batch, stage: str) -> torch.Tensor:
        x, y = batch
        outputs = self.network(x)
        loss = self.task.loss(outputs, y)
        train = stage == "train"
        options = dict(batch_size=len(y), on_step=train, on_epoch=True, sync_dist=not train)
        self.log(f"{stage}/loss", loss, prog_bar=True, **options)
        if self.task.has_accuracy:
            self.log(f"{stage}/accuracy", self.task.correct(outputs, y) / len(y), prog_bar=True, **options)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self.network(batch[0])

    def configure_optimizers(self):
        optimizer = self.optimizer(self.network.parameters())
        if self.lr_scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.lr_scheduler(optimizer), "interval": "epoch"}}

    def on_train_epoch_start(self) -> None:
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=False, on_epoch=True)

    def on_train_start(self) -> None:
        """Keep the initialization: interpolation from initialization to solution starts there."""
        if self.trainer.global_step == 0:
            self.trainer.save_checkpoint(checkpoint_dir(self.trainer) / "init.ckpt")


def checkpoint_dir(trainer: L.Trainer) -> Path:
    """Where this run's checkpoints go: the ModelCheckpoint folder, else <log_dir>/checkpoints."""
    callback = trainer.checkpoint_callback
    if callback is not None and getattr(callback, "dirpath", None):
        return Path(callback.dirpath)
    return Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"
