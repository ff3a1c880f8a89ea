"""A path evaluated while a network trains, so its loss profile can be watched changing over epochs.

Every ``every_n_epochs`` epochs (and at the end of ``fit``) the callback walks a path with the same
``Evaluation.points`` the ``interpolate`` command uses, writes ``path.csv``/``summary.json``/``path.png``
under ``<log_dir>/<name>/epoch_NNNN`` and logs the summary scalars and the profile figure to the run's
TensorBoard at step = epochs completed; each point's curvature (with ``hessian``) goes to
``<name>/epoch_NNNN/<column>`` at step = grid index.

Which path: a module that offers ``evaluation_path() -> (network, path)`` (curves, PAM) is asked for
it; any other module's ``network`` is the end of a straight line from ``start`` (its weights at the
start of training, or a checkpoint). Data comes from the data module's ``eval_dataloader``, so under
DDP every rank sees all of it and the grid of t is split across ranks by ``Evaluation.points``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path as FilePath
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn

from landscape_pl.errors import LandscapeError
from landscape_pl.evaluation import EvalSettings
from landscape_pl.io import load_network, read_checkpoint
from landscape_pl.layout import INIT
from landscape_pl.paths import Path, line
from landscape_pl.paths.curvature import HessianSettings, hessian_settings
from landscape_pl.paths.evaluate import Row
from landscape_pl.paths.grid import t_grid
from landscape_pl.reporting import log_path, path_summary, write_path_report
from landscape_pl.tasks import get_task


class PathEvaluation(L.Callback):
    """Evaluate a path every ``every_n_epochs`` epochs of ``fit`` and at its end.

    Args:
        start: t = 0 of the straight line: "init" (the network's weights when training started; a resumed
            run reads its ``init.ckpt``) or a checkpoint path. Unused when the module has ``evaluation_path``.
        every_n_epochs: evaluate after every this many epochs (0: only at the end of fit).
        t_min: first t of the grid.
        t_max: last t of the grid.
        points: grid points from t_min to t_max, ends included; 61 by default, as the ``curve``
            command (the alignment paper's grid on [0, 1]). Configs may set fewer for speed.
        splits: data splits to evaluate on.
        move: which entries move along the line: all, weights, biases, or a regular expression.
        hold: where the other entries stay: the start's values or the end's.
        bn_batches: training batches for BatchNorm statistics at each t; None a full pass, 0 off.
        mli_tolerance: a rise of the loss larger than this breaks monotonicity.
        name: TensorBoard tag prefix and folder name under the run's log dir.
        write_files: also write path.csv, summary.json and path.png per evaluation.
        repair: REPAIR at each t after BatchNorm recomputation (``symmetry.repair``): units given the mixture
            of the path's two ends' mean and std, the ends measured once per evaluation.
        hessian: curvature at each t (``paths.curvature.HessianSettings``: top eigenvalues, trace) on a
            seeded training subset, as extra columns and TensorBoard curves; default none.
    """

    def __init__(
        self,
        start: str = "init",
        every_n_epochs: int = 1,
        t_min: float = 0.0,
        t_max: float = 1.0,
        points: int = 61,
        splits: list[str] = ["train", "test"],  # noqa: B006 - jsonargparse needs a literal default
        move: str = "all",
        hold: Literal["start", "end"] = "start",
        bn_batches: int | None = None,
        mli_tolerance: float = 0.0,
        name: str = "path",
        write_files: bool = True,
        repair: bool = False,
        hessian: HessianSettings | None = None,
    ) -> None:
        if every_n_epochs < 0:
            raise LandscapeError(f"PathEvaluation every_n_epochs={every_n_epochs} must be >= 0")
        self.ts = t_grid(t_min, t_max, points)
        self.start, self.every_n_epochs = start, every_n_epochs
        self.splits, self.move, self.hold = list(splits), move, hold
        self.bn_batches, self.mli_tolerance, self.name, self.write_files = bn_batches, mli_tolerance, name, write_files
        self.repair, self.hessian = repair, hessian_settings(hessian)
        self._start_state: dict[str, torch.Tensor] | None = None
        self._copy: nn.Module | None = None
        self._evaluated: set[int] = set()

    # -- hooks ------------------------------------------------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if hasattr(pl_module, "evaluation_path"):
            return
        if not isinstance(getattr(pl_module, "network", None), nn.Module):
            raise LandscapeError(
                f"PathEvaluation needs the module to have a `network` or an `evaluation_path()`; "
                f"{type(pl_module).__name__} has neither"
            )
        device = next(pl_module.network.parameters()).device
        self._start_state = {k: v.to(device) for k, v in self._read_start(trainer, pl_module).items()}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epochs = trainer.current_epoch + 1
        if self.every_n_epochs and epochs % self.every_n_epochs == 0:
            self.evaluate(trainer, pl_module, epochs)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.evaluate(trainer, pl_module, trainer.current_epoch)

    # -- the work ---------------------------------------------------------------------------
    def _read_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
        if self.start != "init":
            return load_network(self.start).network.state_dict()
        if trainer.ckpt_path:  # resumed: the weights now are the checkpoint's, the initialization is on disk
            from landscape_pl.modules.endpoint import checkpoint_dir

            init = checkpoint_dir(trainer) / INIT
            state = read_checkpoint(init)["state_dict"]
            return {k[len("network."):]: v for k, v in state.items() if k.startswith("network.")}
        return {k: v.detach().clone() for k, v in pl_module.network.state_dict().items()}

    def path(self, pl_module: L.LightningModule) -> tuple[nn.Module, Path]:
        """(network to write points into, path): the module's own, else the line start → current network."""
        if hasattr(pl_module, "evaluation_path"):
            return pl_module.evaluation_path()
        network = pl_module.network
        if self._copy is None:  # a scratch copy: the network in training is never touched
            self._copy = copy.deepcopy(network)
        current = network.state_dict()
        names = [n for n, _ in network.named_parameters()]
        return self._copy, line(self._start_state, current, names, self.move, self.hold, (f"start {self.start}", "network"))

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule, epochs: int) -> dict | None:
        """One evaluation at ``epochs`` completed (once per epoch count); files and TensorBoard on rank 0."""
        if epochs in self._evaluated:
            return None
        self._evaluated.add(epochs)
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "eval_dataloader"):
            raise LandscapeError("PathEvaluation needs a landscape_pl data module (with eval_dataloader); pass --data")
        task = getattr(pl_module, "task", None) or get_task(datamodule.task)
        network, path = self.path(pl_module)
        path.check(self.ts)
        was_training = network.training
        evaluation = EvalSettings(self.splits, self.bn_batches, progress=False, repair=self.repair, hessian=self.hessian).evaluation(datamodule, task)
        rows = evaluation.path(network, path, self.ts, desc=self.name)
        network.train(was_training)
        summary = path_summary(rows, self.mli_tolerance)
        log_dir = trainer.log_dir  # a broadcast under DDP: every rank must ask
        if trainer.is_global_zero:
            if self.write_files:
                out = FilePath(log_dir or trainer.default_root_dir) / self.name / f"epoch_{epochs:04d}"
                report = {"epoch": epochs, "global_step": trainer.global_step, "start": self.start, "move": self.move,
                          "hold": self.hold, **({"repair": True} if self.repair else {}), **summary}
                write_path_report(rows, out, report, title=f"{self.name}, epoch {epochs}")
            for logger in trainer.loggers:
                if isinstance(logger, TensorBoardLogger):
                    log_path(logger.experiment, rows, summary, self.name, step=epochs, profile=False)
                    self._log_extras(logger.experiment, rows, epochs)
        return summary

    def _log_extras(self, experiment, rows: Sequence[Row], epochs: int) -> None:
        """Each point's extras (curvature) as ``<name>/epoch_NNNN/<extra>`` at step = grid index: one curve along
        t per evaluation (one tag per extra would put every epoch's points on the same steps)."""
        for index, row in enumerate(r for r in rows if r.split == rows[0].split):
            for key, value in row.extras.items():
                experiment.add_scalar(f"{self.name}/epoch_{epochs:04d}/{key}", value, index)
        experiment.flush()
