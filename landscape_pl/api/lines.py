"""Straight lines between two networks: ``interpolate`` (any t, also beyond [0, 1]; MLI variants).

θ(t) = (1 - t) θ_start + t θ_end; with ``move`` only some entries travel and the rest stay at the
``hold`` end (the MLI-plateau paper's weights-only and biases-only paths).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from landscape_pl.api.inputs import NetworkLike, as_data, as_network, task_of
from landscape_pl.api.result import Result
from landscape_pl.data.loaders import Data
from landscape_pl.distributed import join_launched_group
from landscape_pl.evaluation import EvalSettings
from landscape_pl.io import read_path_csv
from landscape_pl.labels import short
from landscape_pl.layout import resolve_init
from landscape_pl.paths import Row, line
from landscape_pl.paths.curvature import HessianSettings, described
from landscape_pl.paths.fixups import Fixup
from landscape_pl.paths.grid import t_grid
from landscape_pl.reporting import log_path, path_summary, write_path_report


@dataclass
class PathResult(Result):
    """Loss and accuracy along a path: ``rows`` (t, split, loss, accuracy) and ``summary`` (per split:
    barrier, max loss and min accuracy on [0, 1], MLI verdict, local minima; plus what was walked).

    Files: path.csv, summary.json, path.png (and a TensorBoard run under ``prefix``).
    """

    rows: list[Row]
    summary: dict
    title: str = ""
    prefix: str = "path"

    @classmethod
    def load(cls, folder: str | Path, prefix: str = "path") -> "PathResult":
        """The result a finished run left in ``folder`` (path.csv and summary.json)."""
        folder = Path(folder)
        return cls(read_path_csv(folder / "path.csv"), json.loads((folder / "summary.json").read_text()), prefix=prefix)

    def split_summary(self) -> dict:
        """The per-split part of the summary (what TensorBoard shows as scalars)."""
        splits = {row.split for row in self.rows}
        return {split: numbers for split, numbers in self.summary.items() if split in splits and isinstance(numbers, dict)}

    def write(self, folder: Path, tensorboard: bool) -> None:
        write_path_report(self.rows, folder, self.summary, title=self.title)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            with SummaryWriter(str(folder / "tensorboard")) as writer:
                log_path(writer, self.rows, self.split_summary(), self.prefix)

    def plot(self):
        from landscape_pl.plots import path_figure

        return path_figure(self.rows, self.title)


def interpolate(
    start: NetworkLike,
    end: NetworkLike,
    data: Data | None = None,
    t: Sequence[float] | None = None,
    move: str = "all",
    hold: Literal["start", "end"] = "start",
    bn_batches: int | None = None,
    splits: Sequence[str] = ("train", "test"),
    mli_tolerance: float = 0.0,
    accelerator: str = "auto",
    progress: bool = True,
    fixups: Sequence[Fixup] = (),
    hessian: HessianSettings | dict | None = None,
    repair: bool = False,
) -> PathResult:
    """Loss and accuracy of θ(t) = (1 - t) θ_start + t θ_end at every t (default: 31 points on [-1, 2]).

    ``start``/``end`` are nn.Modules or checkpoint paths ("init" for the initialization saved next to
    the other checkpoint); ``data`` a LandscapeDataModule or DataLoaders (default: the data module
    saved with the end's run). ``move``: all, weights, biases, or a regular expression on entry names;
    entries that do not move stay at the ``hold`` end. BatchNorm statistics are recomputed at each t on
    ``bn_batches`` training batches (None: a full pass; 0: off), then each of ``fixups`` runs
    (``paths.fixups``); ``hessian`` (HessianSettings or a dict of its fields) adds the top Hessian
    eigenvalues and trace at each t to every row's ``extras``. ``repair`` corrects every hidden unit at
    each t, after BatchNorm recomputation, to mean (1 - t) μ_start + t μ_end and std (1 - t) σ_start +
    t σ_end (REPAIR, ``symmetry.repair``; t beyond [0, 1]: the nearer end's). Under torchrun the t grid is
    split across ranks and every rank gets all rows.
    """
    join_launched_group()
    if isinstance(start, (str, Path)) and isinstance(end, (str, Path)):
        start, end = resolve_init(str(start), str(end)), resolve_init(str(end), str(start))
    a, b = as_network(start, "start"), as_network(end, "end")
    ts = [float(v) for v in t] if t is not None else t_grid(-1.0, 2.0, 31)
    datamodule = as_data(data, a, b)
    settings = EvalSettings(tuple(splits), bn_batches, accelerator, progress, list(fixups), hessian=hessian, repair=repair)
    path = line(a.module.state_dict(), b.module.state_dict(), [n for n, _ in a.module.named_parameters()], move, hold,
                (a.label, b.label))
    network = a.module.to(settings.device)
    rows = settings.evaluation(datamodule, task_of(datamodule, a, b)).path(network, path, ts, desc="interpolate")
    summary = {"start": a.label, "end": b.label, "move": move, "hold": hold, **described(settings.hessian),
               **({"repair": True} if repair else {}), **path_summary(rows, mli_tolerance)}
    return PathResult(rows, summary, f"{short(a.label)} → {short(b.label)} ({move})", "interpolate")
