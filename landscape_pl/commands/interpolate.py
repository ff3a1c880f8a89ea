"""``interpolate``: loss and accuracy along the straight line between two networks.

Under ``torchrun`` the t grid is split across ranks and rank 0 writes the gathered result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from landscape_pl.api import lines
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.distributed import on_rank_zero
from landscape_pl.paths.curvature import HessianSettings
from landscape_pl.paths.grid import t_grid


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
    hessian: HessianSettings | None = None,
    repair: bool = False,
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
        hessian: curvature at every point on a seeded training subset, as extra columns (e.g.
            ``--hessian.top_k 2 --hessian.trace_samples 10 --hessian.subset 256``); default none.
        repair: REPAIR at every t after BatchNorm recomputation: each hidden unit given the mean and std
            (1 - t) μ_start + t μ_end, (1 - t) σ_start + t σ_end (measured on the training data).
    """
    result = lines.interpolate(start, end, data, t_grid(t_min, t_max, points), move, hold, bn_batches, splits, mli_tolerance,
                               accelerator, progress, hessian=hessian, repair=repair)
    result.save(out, tensorboard)
    on_rank_zero(lambda: print(f"wrote {Path(out) / 'path.csv'}, summary.json and path.png"))
    return result.summary
