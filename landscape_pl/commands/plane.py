"""``plane``: loss and accuracy on the plane through three networks (or through a trained curve's ends
and control point, or around one network along random filter-normalized directions), as a CSV grid,
contour plots with the networks and a curve drawn on them, and a TensorBoard figure. Grid points go
through the shared ``Evaluation.path`` (BatchNorm recomputed per point, points split across DDP
ranks under ``torchrun``; rank 0 writes the files)."""

from __future__ import annotations

from pathlib import Path

from landscape_pl.api import planes
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.distributed import on_rank_zero
from landscape_pl.paths.curvature import HessianSettings


def plane(
    networks: list[str] | None = None,
    center: str | None = None,
    curve_ckpt: str | None = None,
    out: str = "runs/plane",
    data: LandscapeDataModule | None = None,
    points: int = 21,
    margin: float = 0.2,
    span: float = 1.0,
    seed: int = 0,
    splits: list[str] = ["train", "test"],  # noqa: B006 - jsonargparse needs a literal default
    curve: list[str] | None = None,
    curve_control: int | None = None,
    curve_points: int = 21,
    labels: list[str] | None = None,
    bn_batches: int | None = None,
    accelerator: str = "auto",
    tensorboard: bool = True,
    progress: bool = True,
    hessian: HessianSettings | None = None,
    repair: bool = False,
) -> dict:
    """Loss and accuracy on a ``points`` x ``points`` grid of a plane; writes plane.csv, plane.json, plane.png (rank 0).

    Args:
        networks: three checkpoints θ1, θ2, θ3: the plane through them (θ1 at the origin, θ2 on the x axis).
        center: instead of ``networks``, one checkpoint: the plane of two random filter-normalized directions around it.
        curve_ckpt: instead of ``networks``, a curve run's checkpoint (CurveModule or PAMModule): the plane through
            its start (θ1, origin), end (θ2, x axis) and control point, with the curve's own path drawn on it.
        out: folder for the results and the TensorBoard run (``out/tensorboard``).
        data: data module; default: the one in the first network's (or the curve's) run config.yaml.
        points: grid points per axis.
        margin: the grid covers the three networks plus this share of their extent on every side.
        span: random planes: the grid covers [-span, span] along each direction.
        seed: random planes: seed of the directions.
        splits: data splits to evaluate on.
        curve: checkpoints along a curve (or one CSV with a ``checkpoint`` column) to draw on the plane.
        curve_control: with ``curve_ckpt``, which control point the plane goes through (1 = nearest the
            start); needed only when the curve has more than one.
        curve_points: with ``curve_ckpt``, the number of evenly spaced t in [0, 1] at which the curve is projected.
        labels: names of the three networks on the plot (default θ1, θ2, θ3; with ``curve_ckpt``: start, end, control).
        bn_batches: training batches for BatchNorm statistics at each point; None a full pass, 0 off.
        accelerator: cpu, cuda or auto.
        tensorboard: also log the figure to TensorBoard.
        progress: show a progress bar.
        hessian: curvature at every point on a seeded training subset, as extra columns (e.g.
            ``--hessian.top_k 2 --hessian.trace_samples 10 --hessian.subset 256``); default none.
        repair: REPAIR at every point after BatchNorm recomputation: each hidden unit given the mixture of
            the networks' mean and std by the point's barycentric coefficients (clipped to >= 0).
    """
    result = planes.plane(networks, center, curve_ckpt, data, points, margin, span, seed, splits,
                          curve, curve_control, curve_points, labels, bn_batches,
                          accelerator, progress, hessian=hessian, repair=repair)
    result.save(out, tensorboard)
    on_rank_zero(lambda: print(f"wrote {Path(out) / 'plane.csv'}, plane.json and plane.png"))
    return result.summary
