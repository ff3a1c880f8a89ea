"""Trained curves (CurveModule, PAMModule): evaluated on a grid of t with BatchNorm statistics
recomputed at each t (appendix C of the alignment paper), one point taken out as a network, and
ensembles of networks along the curve next to independently trained ones (section 5)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from landscape_pl.analysis.curve_metrics import curve_numbers
from landscape_pl.api.inputs import NetworkLike, as_network
from landscape_pl.api.lines import PathResult
from landscape_pl.api.result import Result
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.data.loaders import Data, as_datamodule
from landscape_pl.data.saved import resolve_data
from landscape_pl.devices import device
from landscape_pl.distributed import join_launched_group
from landscape_pl.errors import LandscapeError
from landscape_pl.io import read_checkpoint, write_json
from landscape_pl.labels import short
from landscape_pl.modules.curve import load_curve
from landscape_pl.paths import Row
from landscape_pl.paths.curvature import HessianSettings, described
from landscape_pl.paths.fixups import Fixup
from landscape_pl.paths.grid import t_grid
from landscape_pl.evaluation import EvalSettings
from landscape_pl.reporting import path_summary, write_table
from landscape_pl.tasks import Task

CurveLike = L.LightningModule | str | Path
ENSEMBLE_COLUMNS = ["ensemble", "members", "accuracy", "loss"]


@dataclass
class Curve:
    """A trained curve ready to evaluate: its module (with ``evaluation_path``), a label and its data."""

    module: L.LightningModule
    label: str
    data: LandscapeDataModule
    training_loss: float | None


def as_curve(curve: CurveLike, data: Data | None, accelerator: str) -> Curve:
    """A CurveModule/PAMModule as is, or loaded from its checkpoint; data given, or the curve run's saved data."""
    if isinstance(curve, (str, Path)):
        module, label, loss = load_curve(str(curve)), str(curve), read_checkpoint(curve).get("training_loss")
        datamodule = as_datamodule(data) if data is not None else resolve_data(None, curve)
    elif hasattr(curve, "evaluation_path"):
        if data is None:
            raise LandscapeError("a curve module given in memory needs data: pass a LandscapeDataModule or DataLoaders")
        module, label, loss, datamodule = curve, "curve", None, as_datamodule(data, curve.task.name)
    else:
        raise LandscapeError(f"curve must be a CurveModule, a PAMModule or a curve checkpoint path, got {type(curve).__name__}")
    return Curve(module.to(device(accelerator)), label, datamodule, loss)


def curve_summary(rows: list[Row], training_loss: float | None = None) -> dict:
    """path_summary (barrier, ...) plus the paper's curve numbers per split, and the training loss."""
    summary = path_summary(rows)
    for split in summary:
        mine = sorted((r for r in rows if r.split == split), key=lambda r: r.key)
        summary[split] |= curve_numbers([r.key for r in mine], [r.loss for r in mine], [r.accuracy for r in mine])
    return {"training_loss": training_loss, **summary}


def evaluate_curve(
    curve: CurveLike,
    data: Data | None = None,
    t: Sequence[float] | None = None,
    points: int = 61,
    splits: Sequence[str] = ("train", "test"),
    bn_batches: int | None = None,
    accelerator: str = "auto",
    progress: bool = True,
    fixups: Sequence[Fixup] = (),
    hessian: HessianSettings | dict | None = None,
    repair: bool = False,
) -> PathResult:
    """Loss and accuracy of a trained curve at ``t`` (default: ``points`` evenly spaced on [0, 1]);
    ``hessian`` adds curvature at each t to the rows' extras (as ``interpolate``); ``repair`` corrects
    every hidden unit at t to (1 - t) μ_start + t μ_end, (1 - t) σ_start + t σ_end: the statistics of
    the curve's two ends, never its control points, which are no trained networks (``symmetry.repair``).

    Under torchrun the grid is split across ranks and every rank gets all rows.
    """
    join_launched_group()
    given = as_curve(curve, data, accelerator)
    network, path = given.module.evaluation_path()
    ts = [float(v) for v in t] if t else t_grid(0.0, 1.0, points)
    path.check(ts)
    settings = EvalSettings(tuple(splits), bn_batches, accelerator, progress, list(fixups), hessian=hessian, repair=repair)
    rows = settings.evaluation(given.data, given.module.task).path(network, path, ts, desc="curve")
    summary = {"curve": given.label, **described(settings.hessian), **({"repair": True} if repair else {}),
               **curve_summary(rows, given.training_loss)}
    return PathResult(rows, summary, f"curve {short(given.label)}", "curve")


def points_of(given: Curve, ts: Sequence[float], bn_batches: int | None, accelerator: str,
              repair: bool = False) -> Iterator[tuple[float, nn.Module]]:
    """(t, the curve's network at t) for each t, fixed up as ``evaluate_curve`` does it: BatchNorm
    statistics recomputed on training data, and with ``repair`` REPAIR (the ends measured once for all
    t). The network is the module's own copy, rewritten at each t."""
    network, path = given.module.evaluation_path()
    path.check(ts)
    evaluation = EvalSettings((), bn_batches, accelerator, False, repair=repair).evaluation(given.data, given.module.task, splits=())
    evaluation.prepare(network, path)
    for t in ts:
        given.module.slots.write(path.point(t))
        evaluation.at(network, t)
        yield t, network


def point_of(given: Curve, t: float, bn_batches: int | None, accelerator: str, repair: bool = False) -> nn.Module:
    """The curve's network at ``t``, fixed up as ``evaluate_curve`` does it (the module's own copy)."""
    return next(points_of(given, [t], bn_batches, accelerator, repair))[1]


def curve_point(curve: CurveLike, t: float, data: Data | None = None, bn_batches: int | None = None,
                accelerator: str = "auto", repair: bool = False) -> nn.Module:
    """A new network at ``t`` of the curve, BatchNorm statistics recomputed (and with ``repair`` its units
    REPAIRed, folded into its weights): an ordinary nn.Module."""
    given = as_curve(curve, data, accelerator)
    return copy.deepcopy(point_of(given, t, bn_batches, accelerator, repair))


@torch.no_grad()
def predictions(network: nn.Module, batches, task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities for classification, outputs for regression; targets) over all batches, on the CPU."""
    network.eval()
    dev = next(network.parameters()).device
    outputs, targets = [], []
    for x, y in batches:
        out = network(x.to(dev))
        outputs.append((F.softmax(out, dim=-1) if task.has_accuracy else out).cpu())  # classes last: (N, C) or (N, L, C)
        targets.append(y)
    return torch.cat(outputs), torch.cat(targets)


def ensemble_row(name: str, members: list[torch.Tensor], targets: torch.Tensor, task: Task) -> dict:
    """Accuracy and loss of the mean prediction (probabilities averaged, then NLL).

    The task's own loss and count read the log of the mean probabilities as logits: log-softmax leaves
    normalized log-probabilities unchanged, so this is the NLL for classes and for tokens alike.
    """
    mean = torch.stack(members).mean(0)
    if task.has_accuracy:
        logits = mean.clamp_min(1e-12).log()
        accuracy = (task.correct(logits, targets).double() / len(targets)).item()
        return {"ensemble": name, "members": len(members), "accuracy": accuracy, "loss": task.loss(logits, targets).item()}
    return {"ensemble": name, "members": len(members), "accuracy": None, "loss": task.loss(mean, targets).item()}


@dataclass
class EnsembleResult(Result):
    """One row per ensemble: name, members, accuracy and loss of the mean prediction.

    Files: ensembles.csv, ensembles.md, ensembles.json.
    """

    rows: list[dict]

    @classmethod
    def load(cls, folder: str | Path) -> "EnsembleResult":
        """The result a finished run left in ``folder`` (ensembles.json)."""
        return cls(json.loads((Path(folder) / "ensembles.json").read_text())["ensembles"])

    @property
    def summary(self) -> dict:
        return {"ensembles": self.rows}

    def table(self, folder: Path) -> str:
        """Write the CSV and markdown table; returns the markdown."""
        return write_table(self.rows, ENSEMBLE_COLUMNS, folder / "ensembles")

    def write(self, folder: Path, tensorboard: bool) -> None:
        self.table(folder)
        write_json(self.summary, folder / "ensembles.json")

    def plot(self):
        from landscape_pl.plots import plt

        fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(self.rows)))
        names = [r["ensemble"] for r in self.rows]
        values = [(r["accuracy"] if r["accuracy"] is not None else r["loss"]) for r in self.rows]
        ax.barh(names, values)
        ax.set_xlabel("accuracy" if self.rows and self.rows[0]["accuracy"] is not None else "loss")
        ax.invert_yaxis()
        fig.tight_layout()
        return fig


def curve_ensembles(
    curve: CurveLike,
    t_sets: Sequence[Sequence[float]] = ((0.0, 1.0), (0.0, 0.5, 1.0)),
    independent: Sequence[NetworkLike] = (),
    data: Data | None = None,
    split: str = "test",
    bn_batches: int | None = None,
    accelerator: str = "auto",
    repair: bool = False,
) -> EnsembleResult:
    """Ensembles of networks along the curve (each t set averages its members' probabilities), next to
    one ensemble of the ``independent`` networks; ``repair``: each curve member REPAIRed (as ``evaluate_curve``)."""
    if not t_sets:
        raise LandscapeError("t_sets is empty: give at least one list of t, e.g. [[0, 1], [0, 0.5, 1]]")
    given = as_curve(curve, data, accelerator)
    task, batches = given.module.task, given.data.eval_dataloader(split)
    cache: dict[float, torch.Tensor] = {}
    targets = None
    for t, network in points_of(given, sorted({float(t) for ts in t_sets for t in ts}), bn_batches, accelerator, repair):
        cache[t], targets = predictions(network, batches, task)
    rows = [ensemble_row("curve t=" + "/".join(f"{float(t):g}" for t in ts), [cache[float(t)] for t in ts], targets, task)
            for ts in t_sets]
    if independent:
        members = [predictions(as_network(n, "independent").module.to(device(accelerator)), batches, task)[0] for n in independent]
        rows.append(ensemble_row(f"independent ({len(independent)} checkpoints)", members, targets, task))
    return EnsembleResult(rows)

