"""``mli``: monotonic linear interpolation from a run's initialization to its final weights, in the
three variants of the plateau paper (all parameters, weights only, biases only; what does not move is
held at its final value), with the MLI verdict, the plateau length and the spread of the final
last-layer biases across classes, which the paper ties to the plateau."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from landscape_pl.api.mli import Variant
from landscape_pl.api.mli import mli as interpolate_from_init
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.paths.curvature import HessianSettings


def mli(
    runs: list[str],
    out: str = "runs/mli",
    data: LandscapeDataModule | None = None,
    points: int = 51,
    variants: list[Variant] = ["all", "weights", "biases"],  # noqa: B006 - jsonargparse needs a literal default
    splits: list[Literal["train", "test"]] = ["train", "test"],  # noqa: B006
    plateau_tolerance: float = 0.05,
    mli_tolerance: float = 0.0,
    bn_batches: int | None = None,
    accelerator: str = "auto",
    tensorboard: bool = True,
    progress: bool = True,
    hessian: HessianSettings | None = None,
) -> dict:
    """For each run, the line from its saved init.ckpt to its final weights, per variant; writes mli.csv,
    mli.md (one table), mli.json and mli.png (all profiles), and each path's files under ``out/<run>/<variant>``.

    Args:
        runs: final checkpoints (their init.ckpt lies next to them) or run folders (their last.ckpt).
        out: report folder.
        data: data module; default: the one in each run's saved config.yaml.
        points: grid points on t in [0, 1].
        variants: all (every entry moves), weights (biases held at their final values), biases (weights held).
        splits: data splits to evaluate on.
        plateau_tolerance: the plateau lasts while the loss stays within this (absolute) of its value at t = 0.
        mli_tolerance: a rise of the loss larger than this breaks monotonicity.
        bn_batches: training batches for BatchNorm statistics at each t; None a full pass, 0 off.
        accelerator: cpu, cuda or auto.
        tensorboard: also log the figure and the table's numbers.
        progress: show progress bars.
        hessian: curvature at every point on a seeded training subset, as extra columns (e.g.
            ``--hessian.top_k 2 --hessian.trace_samples 10 --hessian.subset 256``); default none.
    """
    result = interpolate_from_init(runs, data, points, variants, splits, plateau_tolerance, mli_tolerance, bn_batches, accelerator, progress,
                                  hessian=hessian)
    result.save(out, tensorboard)
    print((Path(out) / "mli.md").read_text())
    return result.summary
