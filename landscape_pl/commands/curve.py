"""``curve``, ``curve_point`` and ``curve_ensembles``: a trained curve evaluated, exported and ensembled.

``curve`` evaluates loss and accuracy on a grid of t with BatchNorm statistics recomputed at each
t (appendix C of the alignment paper); under ``torchrun`` the grid is split across ranks and rank 0
writes the gathered result. ``curve_point`` writes one point as an ordinary endpoint checkpoint.
``curve_ensembles`` compares ensembles of networks along the curve with independently trained ones
(section 5 of the alignment paper, after Garipov et al.).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from landscape_pl.analysis.curve_metrics import curve_numbers
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.data.saved import resolve_data
from landscape_pl.devices import device
from landscape_pl.distributed import join_launched_group, on_rank_zero
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network, read_checkpoint, save_network, write_json
from landscape_pl.labels import short
from landscape_pl.modules.curve import load_curve
from landscape_pl.paths import Evaluation, Row, has_batchnorm, recompute_batchnorm
from landscape_pl.paths.grid import t_grid
from landscape_pl.reporting import log_path, path_summary, write_path_report, write_table
from landscape_pl.tasks import Task


def curve_summary(rows: list[Row], training_loss: float | None = None) -> dict:
    """path_summary (barrier, ...) plus the paper's curve numbers per split, and the training loss."""
    summary = path_summary(rows)
    for split in summary:
        mine = sorted((r for r in rows if r.split == split), key=lambda r: r.key)
        summary[split] |= curve_numbers([r.key for r in mine], [r.loss for r in mine], [r.accuracy for r in mine])
    return {"training_loss": training_loss, **summary}


def curve(
    ckpt: str,
    out: str = "runs/curve",
    data: LandscapeDataModule | None = None,
    points: int = 61,
    t: list[float] | None = None,
    splits: list[Literal["train", "test"]] = ["train", "test"],  # noqa: B006 - jsonargparse needs a literal default
    bn_batches: int | None = None,
    accelerator: str = "auto",
    tensorboard: bool = True,
    progress: bool = True,
) -> dict:
    """Evaluate a trained curve on a grid of t; write path.csv, summary.json, path.png (rank 0).

    Args:
        ckpt: checkpoint of a curve run (fit with landscape_pl.CurveModule).
        out: folder for the results and the TensorBoard run (``out/tensorboard``).
        data: data module; default: the one in the curve run's saved config.yaml.
        points: number of evenly spaced t on [0, 1], ends included.
        t: explicit t values instead of the grid (each in [0, 1]).
        splits: data splits to evaluate on.
        bn_batches: training batches to recompute BatchNorm statistics on at each t; None is one
            full pass, 0 is off (ignored for networks without BatchNorm).
        accelerator: cpu, cuda or auto.
        tensorboard: also log the numbers and the figure to TensorBoard.
        progress: show a progress bar.
    """
    join_launched_group()
    module = load_curve(ckpt).to(device(accelerator))
    network, path = module.evaluation_path()
    ts = [float(v) for v in t] if t else t_grid(0.0, 1.0, points)
    path.check(ts)
    datamodule = resolve_data(data, ckpt)
    evaluation = Evaluation(
        splits={split: datamodule.eval_dataloader(split) for split in splits},
        task=module.task,
        bn_data=datamodule.eval_dataloader("train"),
        bn_batches=bn_batches,
        progress=progress,
    )
    rows = evaluation.path(network, path, ts, desc="curve")
    summary = {"curve": ckpt, **curve_summary(rows, read_checkpoint(ckpt).get("training_loss"))}

    def write() -> None:
        write_path_report(rows, out, summary, title=f"curve {short(ckpt)}")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            with SummaryWriter(str(Path(out) / "tensorboard")) as writer:
                log_path(writer, rows, path_summary(rows), "curve")
        print(f"wrote {Path(out) / 'path.csv'}, summary.json and path.png")

    on_rank_zero(write)
    return summary


def network_at(ckpt: str, t: float, datamodule: LandscapeDataModule, bn_batches: int | None, accelerator: str):
    """(network at t with its BatchNorm statistics recomputed on training data, curve module)."""
    module = load_curve(ckpt).to(device(accelerator))
    network, path = module.evaluation_path()
    path.check([t])
    module.slots.write(path.point(t))
    if bn_batches != 0 and has_batchnorm(network):
        recompute_batchnorm(network, datamodule.eval_dataloader("train"), bn_batches)
    return network, module


def curve_point(
    ckpt: str,
    t: float,
    out: str | None = None,
    data: LandscapeDataModule | None = None,
    bn_batches: int | None = None,
    accelerator: str = "auto",
) -> str:
    """Export the network at ``t`` as an ordinary endpoint checkpoint (validate, test, interpolate accept it).

    Args:
        ckpt: checkpoint of a curve run.
        t: the point, in [0, 1].
        out: checkpoint to write; default ``curve_t<t>.ckpt`` next to ``ckpt``.
        data: data module for BatchNorm statistics; default: the curve run's saved config.yaml.
        bn_batches: training batches for BatchNorm statistics; None is one full pass.
        accelerator: cpu, cuda or auto.
    """
    network, module = network_at(ckpt, t, resolve_data(data, ckpt), bn_batches, accelerator)
    target = Path(out) if out else Path(ckpt).parent / f"curve_t{t:g}.ckpt"
    save_network(network, target, module.task.name, module.spec, curve=str(ckpt), t=float(t))
    print(f"wrote {target}")
    return str(target)


@torch.no_grad()
def predictions(network: torch.nn.Module, batches, task: Task) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities for classification, outputs for regression; targets) over all batches, on the CPU."""
    network.eval()
    dev = next(network.parameters()).device
    outputs, targets = [], []
    for x, y in batches:
        out = network(x.to(dev))
        outputs.append((F.softmax(out, dim=1) if task.has_accuracy else out).cpu())
        targets.append(y)
    return torch.cat(outputs), torch.cat(targets)


def ensemble_row(name: str, members: list[torch.Tensor], targets: torch.Tensor, task: Task) -> dict:
    """Accuracy and loss of the mean prediction (probabilities averaged, then NLL)."""
    mean = torch.stack(members).mean(0)
    if task.has_accuracy:
        loss = F.nll_loss(mean.clamp_min(1e-12).log(), targets).item()
        return {"ensemble": name, "members": len(members), "accuracy": (mean.argmax(1) == targets).float().mean().item(), "loss": loss}
    return {"ensemble": name, "members": len(members), "accuracy": None, "loss": task.loss(mean, targets).item()}


def curve_ensembles(
    ckpt: str,
    t_sets: list[list[float]] = [[0.0, 1.0], [0.0, 0.5, 1.0]],  # noqa: B006 - jsonargparse needs a literal default
    independent: list[str] = [],  # noqa: B006
    out: str = "runs/curve_ensembles",
    data: LandscapeDataModule | None = None,
    split: Literal["train", "test"] = "test",
    bn_batches: int | None = None,
    accelerator: str = "auto",
) -> list[dict]:
    """Ensembles of networks along the curve next to an ensemble of independent checkpoints.

    Writes ``ensembles.csv`` and ``ensembles.md`` (ensemble, members, accuracy, loss).

    Args:
        ckpt: checkpoint of a curve run.
        t_sets: each a list of t whose networks (BatchNorm recomputed) average their probabilities.
        independent: independently trained endpoint checkpoints, ensembled together.
        out: output folder.
        data: data module; default: the curve run's saved config.yaml.
        split: split the ensembles are scored on.
        bn_batches: training batches for BatchNorm statistics at each t; None is one full pass.
        accelerator: cpu, cuda or auto.
    """
    datamodule = resolve_data(data, ckpt)
    cache: dict[float, torch.Tensor] = {}
    targets, task = None, None
    for t in sorted({float(t) for ts in t_sets for t in ts}):
        network, module = network_at(ckpt, t, datamodule, bn_batches, accelerator)
        cache[t], targets = predictions(network, datamodule.eval_dataloader(split), module.task)
        task = module.task
    if task is None:
        raise LandscapeError("t_sets is empty: give at least one list of t, e.g. [[0, 1], [0, 0.5, 1]]")
    rows = [ensemble_row("curve t=" + "/".join(f"{float(t):g}" for t in ts), [cache[float(t)] for t in ts], targets, task) for ts in t_sets]
    if independent:
        members = [predictions(load_network(p).network.to(device(accelerator)), datamodule.eval_dataloader(split), task)[0] for p in independent]
        rows.append(ensemble_row(f"independent ({len(independent)} checkpoints)", members, targets, task))
    write_ensembles(rows, Path(out))
    return rows


def write_ensembles(rows: list[dict], out: Path) -> None:
    print(write_table(rows, ["ensemble", "members", "accuracy", "loss"], out / "ensembles"))
    write_json({"ensembles": rows}, out / "ensembles.json")
