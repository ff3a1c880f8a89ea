"""Two-dimensional slices of weight space, evaluated: the plane through three networks (or through a
trained curve's ends and control point, or around one network along random filter-normalized
directions) on a grid, with the networks and a curve projected onto it.

Grid points go through the shared evaluation (BatchNorm recomputed per point, points split across
DDP ranks under torchrun, every rank gets all rows).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from torch import nn

from landscape_pl.api.curves import CurveLike
from landscape_pl.api.inputs import Network, NetworkLike, as_data, as_network, task_of
from landscape_pl.api.result import Result
from landscape_pl.data.loaders import Data, as_datamodule
from landscape_pl.data.saved import resolve_data
from landscape_pl.distributed import join_launched_group
from landscape_pl.errors import LandscapeError
from landscape_pl.evaluation import EvalSettings
from landscape_pl.io import extra_columns, write_json
from landscape_pl.labels import distinct_labels, short, unambiguous
from landscape_pl.modules.curve import load_curve
from landscape_pl.paths import Anchors, Row
from landscape_pl.paths.anchors import StateDict
from landscape_pl.paths.curvature import HessianSettings, described
from landscape_pl.paths.curves import Curve
from landscape_pl.paths.fixups import Fixup
from landscape_pl.paths.grid import t_grid
from landscape_pl.paths.plane import Plane, grid, plane_through, random_plane
from landscape_pl.tasks import Task


@dataclass
class PlaneResult(Result):
    """The grid's rows (key (x, y)), the anchors' own rows, the axes, marks and projected curve, the summary.

    Files: plane.csv, plane.json, plane.png.
    """

    rows: list[Row]
    anchor_rows: list[Row]
    xs: list[float]
    ys: list[float]
    marks: list[tuple[str, tuple[float, float]]]
    curve: list[dict]
    summary: dict
    title: str
    axis_labels: tuple[str, str]

    def write(self, folder: Path, tensorboard: bool) -> None:
        write_grid_csv(self.rows, folder / "plane.csv")
        write_json(self.summary, folder / "plane.json")
        self.write_figure(folder / "plane.png", "plane/contours" if tensorboard else None)

    def plot(self):
        return plane_figure(self.rows, self.xs, self.ys, self.marks, self.curve, self.title, self.axis_labels)


def curve_checkpoints(curve: Sequence[NetworkLike]) -> list[NetworkLike]:
    """Networks or checkpoints given one by one, or one CSV with a ``checkpoint`` column (paths relative to the CSV)."""
    if len(curve) == 1 and isinstance(curve[0], (str, Path)) and str(curve[0]).endswith(".csv"):
        table = Path(curve[0])
        if not table.is_file():
            raise LandscapeError(f"curve CSV {str(table)!r} does not exist")
        with table.open() as handle:
            reader = csv.DictReader(handle)
            if "checkpoint" not in (reader.fieldnames or []):
                raise LandscapeError(f"curve CSV {str(table)!r} needs a 'checkpoint' column; it has {reader.fieldnames}")
            return [(table.parent / row["checkpoint"]) for row in reader]
    return [Path(c) if isinstance(c, str) else c for c in curve]


def anchor_labels(loaded: Sequence[Network]) -> list[str]:
    """How the plane's errors name its networks: checkpoints by short names, by full paths where those
    collide, and all by full paths when two of them are one network (one file, or identical weights)."""
    weights = [dict(n.module.named_parameters()) for n in loaded]
    same = any(a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a) for a, b in combinations(weights, 2))
    files = iter(unambiguous([n.label for n in loaded if n.path is not None], full=same))
    return [next(files) if n.path is not None else n.label for n in loaded]


def project_curve(plane: Plane, networks: Sequence[NetworkLike]) -> list[dict]:
    """Each curve network's coordinates on the plane and its distance off it."""
    points = []
    for k, given in enumerate(networks):
        network = as_network(given, f"curve network {k}")
        theta = Anchors([plane.anchors.unflatten(plane.anchors.matrix[0]), network.module.state_dict()], ["plane", network.label]).matrix[1]
        (x, y), off = plane.project(theta)
        points.append({"checkpoint": network.label, "x": x, "y": y, "distance_off_plane": off})
    return points


def curve_anchors(ckpt: CurveLike, control: int | None) -> tuple[nn.Module, Curve, list[StateDict], list[str], int, Task]:
    """A trained curve's plane: (network, curve, [θ_start, θ_end, control point] as state dicts, their
    sources, the control point's index).

    The control point has only parameters; every anchor carries the evaluation network's BatchNorm
    buffers (θ_start's), so with ``bn_batches=0`` the whole plane keeps θ_start's statistics, as
    ``curve`` does along t. A curve with several control points needs ``control`` (1 = nearest the start).
    """
    module = load_curve(str(ckpt)) if isinstance(ckpt, (str, Path)) else ckpt
    network, path = module.evaluation_path()
    rows = path.anchors.matrix
    controls = len(rows) - 2
    if controls < 1:
        raise LandscapeError(f"--curve_ckpt {ckpt!r} is a straight line (no control point) and spans no plane; "
                             "give three networks with --networks instead")
    if control is None and controls > 1:
        raise LandscapeError(
            f"--curve_ckpt {ckpt!r} has {controls} control points, and a plane goes through its two ends and one of "
            f"them: pick it with --curve_control K (1 to {controls}, counted from the start); the curve's other points "
            "may then lie off the plane (plane.json gives each one's distance_off_plane)")
    control = 1 if control is None else control
    if not 1 <= control <= controls:
        raise LandscapeError(f"--curve_control={control}: {ckpt!r} has control points 1 to {controls}")
    base = network.state_dict()
    states = [{**base, **path.anchors.unflatten(rows[k])} for k in (0, len(rows) - 1, control)]
    hparams = getattr(module, "hparams", {})
    sources = [str(hparams.get("start", ckpt)), str(hparams.get("end", ckpt)), str(ckpt)]
    return network, path, states, sources, control, module.task


def project_path(plane: Plane, curve: Curve, points: int) -> list[dict]:
    """The curve's own points at ``points`` evenly spaced t in [0, 1], combined in float64 from its
    anchors, with their coordinates on the plane and their distance off it."""
    ts = t_grid(0.0, 1.0, points)
    thetas = curve.basis(torch.tensor(ts, dtype=torch.float64)).double() @ curve.anchors.matrix.double()
    base = plane.anchors.unflatten(plane.anchors.matrix[0].double())
    projected = []
    for t, theta in zip(ts, thetas):
        state = base | curve.anchors.unflatten(theta)
        (x, y), off = plane.project(torch.cat([state[n].reshape(-1) for n in plane.anchors.names]))
        projected.append({"t": t, "x": x, "y": y, "distance_off_plane": off})
    return projected


def write_grid_csv(rows: list[Row], path: Path) -> None:
    """``x,y,split,loss,accuracy`` and one column per extra (curvature)."""
    extras = extra_columns(rows)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x", "y", "split", "loss", "accuracy", *extras])
        for r in rows:
            writer.writerow([repr(r.key[0]), repr(r.key[1]), r.split, repr(r.loss), "" if r.accuracy is None else repr(r.accuracy),
                             *("" if r.extras.get(name) is None else repr(r.extras[name]) for name in extras)])


CURVATURE = {"hessian_eig_1": "top Hessian eigenvalue", "hessian_trace": "Hessian trace"}  # the extra a plane's third panel shows


def plane_figure(rows: list[Row], xs: list[float], ys: list[float], marks: list[tuple[str, tuple[float, float]]],
                 curve: list[dict], title: str, axis_labels: tuple[str, str]):
    """Per split: log10 loss and accuracy contours, and the curvature's (the top Hessian eigenvalue, else the
    trace) when the rows carry it; the anchors marked and named, the curve as a polyline."""
    from landscape_pl.plots import plt

    splits = list(dict.fromkeys(r.split for r in rows))
    has_accuracy = any(r.accuracy is not None for r in rows)
    curvature = next((name for name in CURVATURE if any(name in r.extras for r in rows)), None)
    columns = 1 + has_accuracy + (curvature is not None)
    fig, axes = plt.subplots(len(splits), columns, figsize=(6 * columns, 4.8 * len(splits)), squeeze=False)
    index = {(x, y): (j, i) for j, y in enumerate(ys) for i, x in enumerate(xs)}
    for s, split in enumerate(splits):
        loss = np.full((len(ys), len(xs)), np.nan)
        accuracy = np.full((len(ys), len(xs)), np.nan)
        curved = np.full((len(ys), len(xs)), np.nan)
        for r in rows:
            if r.split == split and r.key in index:
                loss[index[r.key]] = math.log10(r.loss) if r.finite and r.loss > 0 else np.nan
                accuracy[index[r.key]] = np.nan if r.accuracy is None else 100 * r.accuracy
                curved[index[r.key]] = r.extras.get(curvature, np.nan)
        fields = ([("log10 loss", loss, "viridis")] + ([("accuracy %", accuracy, "magma")] if has_accuracy else [])
                  + ([(CURVATURE[curvature], curved, "cividis")] if curvature else []))
        for c, (name, values, cmap) in enumerate(fields):
            ax = axes[s, c]
            image = ax.contourf(xs, ys, np.ma.masked_invalid(values), levels=20, cmap=cmap)
            ax.contour(xs, ys, np.ma.masked_invalid(values), levels=10, colors="k", linewidths=0.4)
            fig.colorbar(image, ax=ax, label=name)
            if curve:
                ax.plot([p["x"] for p in curve], [p["y"] for p in curve], "w.-", linewidth=1.5, label="curve")
            for label, (x, y) in marks:
                ax.plot(x, y, "o", color="white", markeredgecolor="black", markersize=8)
                ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 5), color="white", fontsize=8)
            ax.set_title(f"{split}: {name}")
            ax.set_xlabel(axis_labels[0])
            ax.set_ylabel(axis_labels[1])
            ax.set_aspect("equal")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plane(
    networks: Sequence[NetworkLike] | None = None,
    center: NetworkLike | None = None,
    curve_ckpt: CurveLike | None = None,
    data: Data | None = None,
    points: int = 21,
    margin: float = 0.2,
    span: float = 1.0,
    seed: int = 0,
    splits: Sequence[str] = ("train", "test"),
    curve: Sequence[NetworkLike] | None = None,
    curve_control: int | None = None,
    curve_points: int = 21,
    labels: Sequence[str] | None = None,
    bn_batches: int | None = None,
    accelerator: str = "auto",
    progress: bool = True,
    fixups: Sequence[Fixup] = (),
    hessian: HessianSettings | dict | None = None,
    repair: bool = False,
) -> PlaneResult:
    """Loss and accuracy on a ``points`` x ``points`` grid of a plane.

    Give one of ``networks`` (three nn.Modules or checkpoints: θ1 at the origin, θ2 on the x axis),
    ``center`` (one network: two random filter-normalized directions around it, [-span, span]²) or
    ``curve_ckpt`` (a trained CurveModule/PAMModule or its checkpoint: the plane through its start,
    end and control point ``curve_control``, with the curve's own path at ``curve_points`` t drawn on
    it). ``curve`` draws other networks (or one CSV with a ``checkpoint`` column) on the plane. The
    grid covers the anchors plus ``margin`` of their extent on every side. ``hessian`` adds curvature
    at each grid point to its rows' extras (columns of plane.csv). ``repair`` corrects every hidden unit
    at each grid point to the mixture of the networks' mean and std by the point's barycentric
    coefficients in the three networks (negative ones clipped to 0, the rest renormalized); through a
    curve, the control point's share goes half to each end (it is no trained network); around one
    network, to that network's statistics (``symmetry.repair``).
    """
    join_launched_group()
    given = [flag for flag, value in (("--networks", networks), ("--center", center), ("--curve_ckpt", curve_ckpt))
             if value is not None]
    if len(given) != 1:
        raise LandscapeError("give one of --networks (three checkpoints), --center (one checkpoint, random directions) or "
                             f"--curve_ckpt (a curve run's checkpoint), not {' and '.join(given) or 'none'}")
    if curve_ckpt is not None and curve:
        raise LandscapeError("--curve_ckpt draws its own curve on the plane; leave out --curve")
    if curve_control is not None and curve_ckpt is None:
        raise LandscapeError("--curve_control picks a control point of --curve_ckpt; give --curve_ckpt too")
    traced = None
    if curve_ckpt is not None:
        network, traced, states, paths, curve_control, traced_task = curve_anchors(curve_ckpt, curve_control)
        default_names = ["θ1 (t=0)", "θ2 (t=1)", "control point" if len(traced.anchors) == 3 else f"control point {curve_control}"]
        plane_labels = [short(paths[0]), short(paths[1]), f"{short(curve_ckpt)} control point {curve_control}"]
    else:
        given_networks = [center] if center is not None else list(networks)
        if center is None and len(given_networks) != 3:
            raise LandscapeError(f"--networks needs exactly three checkpoints, got {len(given_networks)}: {given_networks}")
        loaded = [as_network(n, f"θ{k + 1}") for k, n in enumerate(given_networks)]
        network, states = loaded[0].module, [n.module.state_dict() for n in loaded]
        paths = [n.label for n in loaded]
        default_names, plane_labels = ["θ1", "θ2", "θ3"], anchor_labels(loaded)
    parameter_names = [n for n, _ in network.named_parameters()]
    if center is None:
        names = list(labels or default_names)
        if len(names) != 3:
            raise LandscapeError(f"--labels needs three names, got {names}")
        surface = plane_through(states, plane_labels, geometry=parameter_names)
        if curve_ckpt is not None:  # the control point is no network: its share goes half to each end
            surface.made_of([0, 1], [[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]])
        xs, ys = grid(surface, points, margin)
        axis_labels = (f"x: along {names[1]} - {names[0]}", f"y: Gram-Schmidt of {names[2]} - {names[0]}")
    else:
        names = list(labels or ["θ"])[:1]
        surface = random_plane(states[0], short(paths[0]), parameter_names, seed)
        xs, ys = grid(surface, points, margin, span)
        axis_labels = ("direction 1 (filter-normalized)", "direction 2 (filter-normalized)")
    marks = list(zip(names, surface.anchor_points))
    if curve_ckpt is not None:
        datamodule = as_datamodule(data) if data is not None else resolve_data(None, curve_ckpt)
        task = traced_task
    else:
        datamodule = as_data(data, loaded[0])
        task = task_of(datamodule, loaded[0])
    settings = EvalSettings(tuple(splits), bn_batches, accelerator, progress, list(fixups), hessian=hessian, repair=repair)
    network = network.to(settings.device)
    evaluation = settings.evaluation(datamodule, task)
    keys = [(x, y) for y in ys for x in xs] + list(surface.anchor_points)
    rows = evaluation.path(network, surface, keys, desc="plane")
    grid_rows, anchor_rows = rows[: len(xs) * len(ys) * len(splits)], rows[len(xs) * len(ys) * len(splits):]
    if traced is not None:
        projected = project_path(surface, traced, curve_points)
    else:
        projected = project_curve(surface, curve_checkpoints(curve)) if curve else []
    if center is not None:
        kind = f"random filter-normalized directions (seed {seed})"
    elif curve_ckpt is not None:
        kind = f"through a curve's start, end and control point {curve_control}"
    else:
        kind = "through three networks"
    summary = {
        "networks": [str(p) for p in paths],
        "kind": kind,
        **described(settings.hessian),
        **({"repair": True} if repair else {}),
        **({"curve_ckpt": str(curve_ckpt) if isinstance(curve_ckpt, (str, Path)) else "curve", "curve_control": curve_control}
           if curve_ckpt is not None else {}),
        "anchors": [{"label": name, "x": x, "y": y, **{f"{r.split}_loss": r.loss for r in anchor_rows if r.key == (x, y)},
                     **{f"{r.split}_accuracy": r.accuracy for r in anchor_rows if r.key == (x, y)}}
                    for name, (x, y) in marks],
        "grid": {"x": [xs[0], xs[-1]], "y": [ys[0], ys[-1]], "points": points},
        "curve": projected,
        "min_loss": {s: min((r.loss for r in grid_rows if r.split == s and r.finite), default=None) for s in splits},
    }

    title = " | ".join(f"{n} = {label}" for n, label in zip(names, distinct_labels([Path(p) for p in paths])))
    return PlaneResult(grid_rows, anchor_rows, xs, ys, marks, projected, summary, title, axis_labels)
