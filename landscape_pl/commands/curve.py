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

from landscape_pl.api import curves
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.distributed import on_rank_zero
from landscape_pl.io import save_network
from landscape_pl.paths.curvature import HessianSettings


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
    hessian: HessianSettings | None = None,
    repair: bool = False,
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
        hessian: curvature at every point on a seeded training subset, as extra columns (e.g.
            ``--hessian.top_k 2 --hessian.trace_samples 10 --hessian.subset 256``); default none.
        repair: REPAIR at every t after BatchNorm recomputation: each hidden unit given the mean and std
            (1 - t) μ + t μ', (1 - t) σ + t σ' of the curve's two ends (measured on the training data).
    """
    result = curves.evaluate_curve(ckpt, data, t, points, splits, bn_batches, accelerator, progress, hessian=hessian,
                                   repair=repair)
    result.save(out, tensorboard)
    on_rank_zero(lambda: print(f"wrote {Path(out) / 'path.csv'}, summary.json and path.png"))
    return result.summary


def curve_point(
    ckpt: str,
    t: float,
    out: str | None = None,
    data: LandscapeDataModule | None = None,
    bn_batches: int | None = None,
    accelerator: str = "auto",
    repair: bool = False,
) -> str:
    """Export the network at ``t`` as an ordinary endpoint checkpoint (validate, test, interpolate accept it).

    Args:
        ckpt: checkpoint of a curve run.
        t: the point, in [0, 1].
        out: checkpoint to write; default ``curve_t<t>.ckpt`` next to ``ckpt``.
        data: data module for BatchNorm statistics; default: the curve run's saved config.yaml.
        bn_batches: training batches for BatchNorm statistics; None is one full pass.
        accelerator: cpu, cuda or auto.
        repair: REPAIR at t after BatchNorm recomputation: each hidden unit given the mean and std
            (1 - t) μ + t μ', (1 - t) σ + t σ' of the curve's two ends (measured on the training data).
            The correction is folded into the weights: the checkpoint is an ordinary network.
    """
    given = curves.as_curve(ckpt, data, accelerator)
    network, module = curves.point_of(given, t, bn_batches, accelerator, repair), given.module
    target = Path(out) if out else Path(ckpt).parent / f"curve_t{t:g}.ckpt"
    save_network(network, target, module.task.name, module.spec, curve=str(ckpt), t=float(t))
    print(f"wrote {target}")
    return str(target)


def curve_ensembles(
    ckpt: str,
    t_sets: list[list[float]] = [[0.0, 1.0], [0.0, 0.5, 1.0]],  # noqa: B006 - jsonargparse needs a literal default
    independent: list[str] = [],  # noqa: B006
    out: str = "runs/curve_ensembles",
    data: LandscapeDataModule | None = None,
    split: Literal["train", "test"] = "test",
    bn_batches: int | None = None,
    accelerator: str = "auto",
    repair: bool = False,
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
        repair: REPAIR at each t of the ensembles, after BatchNorm recomputation: each hidden unit given the mean and std
            (1 - t) μ + t μ', (1 - t) σ + t σ' of the curve's two ends (measured on the training data).
    """
    result = curves.curve_ensembles(ckpt, t_sets, independent, data, split, bn_batches, accelerator, repair)
    result.save(out)
    print((Path(out) / "ensembles.md").read_text())
    return result.rows
