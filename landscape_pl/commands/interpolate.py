"""``interpolate``: loss and accuracy along the straight line between two networks.

Under ``torchrun`` the t grid is split across ranks and rank 0 writes the gathered result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.data.saved import resolve_data
from landscape_pl.devices import device
from landscape_pl.distributed import join_launched_group, on_rank_zero
from landscape_pl.io import load_network
from landscape_pl.labels import short
from landscape_pl.layout import resolve_init
from landscape_pl.paths import Evaluation, line
from landscape_pl.paths.grid import t_grid
from landscape_pl.reporting import log_path, path_summary, write_path_report
from landscape_pl.tasks import get_task


def interpolate(
    start: str,
    end: str,
    out: str = "runs/interpolate",
    data: LandscapeDataModule | None = None,
    t_min: float = -1.0,
    t_max: float = 2.0,
    points: int = 31,
    splits: list[Literal["train", "test"]] = ["train", "test"],  # noqa: B006 - jsonargparse needs a literal default
    move: str = "all",
    hold: Literal["start", "end"] = "start",
    bn_batches: int | None = None,
    mli_tolerance: float = 0.0,
    accelerator: str = "auto",
    tensorboard: bool = True,
    progress: bool = True,
) -> dict:
    """Evaluate θ(t) = (1 - t) θ_start + t θ_end on a grid of t; write path.csv, summary.json, path.png (rank 0).

    Args:
        start: checkpoint at t = 0, or "init" for the initialization saved next to ``end``.
        end: checkpoint at t = 1, or "init" for the initialization saved next to ``start``.
        out: folder for the results and the TensorBoard run (``out/tensorboard``).
        data: data module; default: the one in the run's saved config.yaml.
        t_min: first t (t < 0 extrapolates beyond start).
        t_max: last t (t > 1 extrapolates beyond end).
        points: number of grid points, ends included.
        splits: data splits to evaluate on.
        move: which entries move along the path: all, weights, biases, or a regular expression on names.
        hold: where entries that do not move stay: the start network's values or the end's.
        bn_batches: training batches to recompute BatchNorm statistics on at each t; None is one
            full pass, 0 is off (ignored for networks without BatchNorm).
        mli_tolerance: a rise of the loss larger than this breaks monotonicity.
        accelerator: cpu, cuda or auto.
        tensorboard: also log the numbers and the figure to TensorBoard.
        progress: show a progress bar.
    """
    join_launched_group()
    start, end = resolve_init(start, end), resolve_init(end, start)
    ts = t_grid(t_min, t_max, points)
    a, b = load_network(start), load_network(end)
    datamodule = resolve_data(data, end)
    task = get_task(datamodule.task)
    path = line(a.network.state_dict(), b.network.state_dict(), [n for n, _ in a.network.named_parameters()], move, hold, (start, end))
    network = a.network.to(device(accelerator))
    evaluation = Evaluation(
        splits={split: datamodule.eval_dataloader(split) for split in splits},
        task=task,
        bn_data=datamodule.eval_dataloader("train"),
        bn_batches=bn_batches,
        progress=progress,
    )
    rows = evaluation.path(network, path, ts, desc="interpolate")
    summary = {"start": start, "end": end, "move": move, "hold": hold, **path_summary(rows, mli_tolerance)}

    def write() -> None:
        write_path_report(rows, out, summary, title=f"{short(start)} → {short(end)} ({move})")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            with SummaryWriter(str(Path(out) / "tensorboard")) as writer:
                log_path(writer, rows, path_summary(rows, mli_tolerance), "interpolate")
        print(f"wrote {Path(out) / 'path.csv'}, summary.json and path.png")

    on_rank_zero(write)
    return summary
