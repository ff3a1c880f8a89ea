"""Stability to SGD noise (Frankle et al. 2020, Linear Mode Connectivity and the Lottery Ticket
Hypothesis) as resumable stages.

A parent trains from one initialization and saves its whole training state (weights, optimizer,
epoch and schedule position) at each spawn step k (``callbacks.SpawnCheckpoints``; k counts optimizer
steps, 0 is the initialization). At each k two children resume from that state, each with a data
order of its own (its seed; the parent's data-order state is dropped, ``trajectory.clone_start``) and
train to the parent's full length. The straight line between the two children (and, with ``align``,
between the first and the second with its units permuted to match) gives the error barrier at k;
the network is stable from the first k whose barrier is below a threshold.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from landscape_pl.analysis.stability import error_barrier, stable_from
from landscape_pl.api.alignment import align as align_networks
from landscape_pl.api.lines import PathResult, interpolate
from landscape_pl.api.result import Result
from landscape_pl.callbacks.spawn import STATE_KEY, SpawnCheckpoints
from landscape_pl.data.saved import resolve_data
from landscape_pl.errors import LandscapeError
from landscape_pl.fitting import fit_run
from landscape_pl.io import read_checkpoint, write_json
from landscape_pl.layout import Study
from landscape_pl.paths.grid import t_grid
from landscape_pl.recipes import find_config
from landscape_pl.reporting import write_table
from landscape_pl.study.endpoints import endpoint_stage, file_digest
from landscape_pl.study.lines import saved
from landscape_pl.study.runner import Outcomes, Stage, run_stages
from landscape_pl.study.trajectory import clone_start

COLUMNS = ("step", "split", "kind", "error_barrier", "loss_barrier", "error_start", "error_end", "max_error_0_1")
NUMBERS = ("error_barrier", "loss_barrier", "error_start", "error_end", "max_error_0_1")
# a child resumes mid-epoch from another run's state on purpose: with a new data order, without the parent's callbacks
EXPECTED = (r"You're resuming from a checkpoint that ended before the epoch ended", r"The dirpath has changed from",
            r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint")


@dataclass
class StabilityResult(Result):
    """Barriers between the two children of each spawn step: ``rows`` (step, split, kind: unaligned or
    aligned, error and loss barrier, the children's errors, the largest error on the line) and ``summary``
    (the parent's length in steps, the threshold, the split it is read on, and per kind the barriers in
    step order and the first stable step).

    Files: stability.csv, stability.md, stability.png, summary.json (and TensorBoard scalars and figure).
    """

    rows: list[dict]
    summary: dict

    @classmethod
    def load(cls, folder: str | Path) -> StabilityResult:
        folder = Path(folder)
        with (folder / "stability.csv").open(newline="") as handle:
            rows = [{**row, "step": int(row["step"]), **{k: float(row[k]) if row[k] else None for k in NUMBERS}}
                    for row in csv.DictReader(handle)]
        return cls(rows, json.loads((folder / "summary.json").read_text()))

    def write(self, folder: Path, tensorboard: bool) -> None:
        table = write_table(self.rows, COLUMNS, folder / "stability")
        write_json(self.summary, folder / "summary.json")
        self.write_figure(folder / "stability.png", "stability/barrier_vs_step" if tensorboard else None)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            with SummaryWriter(str(folder / "tensorboard")) as writer:  # step = spawn step k, so the x axis is k
                for row in self.rows:
                    for key in ("error_barrier", "loss_barrier"):
                        if row[key] is not None:
                            writer.add_scalar(f"stability/{row['split']}/{row['kind']}/{key}", row[key], row["step"])
                writer.add_text("stability/table", table + "\n\n" + verdict(self.summary), 0)

    def plot(self):
        """Error and loss barrier vs spawn step, one line per kind and split. The x axis is symlog: linear on
        [0, 1] and logarithmic beyond, so k = 0 (the initialization) sits one decade left of k = 1."""
        from landscape_pl.plots import plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, key in zip(axes, ("error_barrier", "loss_barrier")):
            for kind in dict.fromkeys(r["kind"] for r in self.rows):
                for split in dict.fromkeys(r["split"] for r in self.rows):
                    mine = sorted((r for r in self.rows if r["kind"] == kind and r["split"] == split), key=lambda r: r["step"])
                    ax.plot([r["step"] for r in mine], [r[key] for r in mine], "o-" if split == self.summary["split"] else "o:",
                            label=f"{kind}, {split}")
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlim(left=-0.5)
            ax.set_xlabel("spawn step k (symlog: 0 is the initialization)")
            ax.set_ylabel(key.replace("_", " "))
        axes[0].axhline(self.summary["threshold"], color="grey", linestyle="--", label=f"threshold {self.summary['threshold']:g}")
        first = self.summary["stable_from"].get("unaligned")
        if first is not None:
            axes[0].axvline(first, color="grey", linestyle=":", label=f"stable from k = {first}")
        axes[0].legend(fontsize=8)
        fig.suptitle(f"instability vs spawn step (parent length {self.summary['total_steps']} steps)")
        fig.tight_layout()
        return fig


def verdict(summary: dict) -> str:
    """The first stable spawn step per kind, plainly."""
    parts = []
    for kind, step in summary["stable_from"].items():
        where = "at no spawn step" if step is None else f"from spawn step {step}"
        parts.append(f"{kind}: the {summary['split']} error barrier is below {summary['threshold']:g} {where}")
    return "; ".join(parts)


def barrier_rows(step: int, kind: str, line: PathResult) -> list[dict]:
    """One row per split of one line between two children: Frankle et al.'s error barrier (``analysis.stability``)
    and the loss barrier above the chord (``path_summary``), with the children's errors."""
    rows = []
    for split, numbers in line.split_summary().items():
        mine = sorted((r for r in line.rows if r.split == split), key=lambda r: r.key)
        if any(r.accuracy is None for r in mine):
            raise LandscapeError(f"the line between the children of spawn step {step} has no accuracy on {split}: the stability "
                                 "study reads the error barrier, so its endpoint config must train a classifier")
        ts, errors = [r.key for r in mine], [1.0 - r.accuracy for r in mine]
        inside = [e for t, e in zip(ts, errors) if 0.0 <= t <= 1.0]
        rows.append({"step": step, "split": split, "kind": kind, "error_barrier": error_barrier(ts, errors),
                     "loss_barrier": numbers.get("barrier"), "error_start": errors[0], "error_end": errors[-1],
                     "max_error_0_1": max(inside)})
    return rows


def summarize(rows: Sequence[dict], steps: Sequence[int], total_steps: int, threshold: float, split: str, seeds: dict) -> dict:
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    barriers = {kind: [next(r["error_barrier"] for r in rows if (r["step"], r["split"], r["kind"]) == (k, split, kind)) for k in steps]
                for kind in kinds}
    return {"total_steps": total_steps, "steps": list(steps), "split": split, "threshold": threshold, **seeds,
            "error_barrier": barriers, "stable_from": {kind: stable_from(steps, values, threshold) for kind, values in barriers.items()}}


def child_stage(name: str, layout: Study, step: int, index: int, config: Path, seed: int, data_seed: int,
                overrides: Sequence[str]) -> Stage:
    """Child ``index`` of spawn step ``step``: the parent's state at ``step`` resumed with ``data_seed`` (its
    data order, and any other training noise), trained to the parent's length; refused if it ends elsewhere."""
    run, spawned = layout.child(step, index), layout.spawned(step)
    args = (f"--seed_everything={data_seed}", f"--model.init_args.init_seed={seed}", f"--data.init_args.data_seed={data_seed}",
            *overrides)

    def train() -> Path:
        start = clone_start(spawned, run.root / "start.ckpt")
        with warnings.catch_warnings():
            for message in EXPECTED:
                warnings.filterwarnings("ignore", message=message)
            last = fit_run(config, run.root, *args, f"--ckpt_path={start}")
        length, ended = total_steps(spawned), read_checkpoint(last)["global_step"]
        if ended != length:
            raise LandscapeError(f"child {index} of spawn step {step} ended at step {ended}, but the parent's length is {length} "
                                 f"steps: the overrides must not change the training length between parent and children")
        return last

    return Stage(name, train, [run.root, run.last], {"config": file_digest(config), "args": args}, inputs=[spawned],
                 depends=["parent"], load=lambda: run.last)


def total_steps(spawned: Path) -> int:
    """The parent's training length, as its SpawnCheckpoints callback recorded it in every state it saved."""
    return int(read_checkpoint(spawned)["callbacks"][STATE_KEY]["total_steps"])


def line_stage(layout: Study, step: int, kind: str, ts: list[float], splits: Sequence[str], method: str | None,
               bn_batches: int | None, accelerator: str) -> Stage:
    """The line between the two children of ``step``; ``aligned`` permutes the second child's units to the first's."""
    a, b, out = layout.child(step, 0).last, layout.child(step, 1).last, layout.children_line(step, kind)

    def walk() -> PathResult:
        data = resolve_data(None, a)
        end = b if kind == "unaligned" else align_networks(a, b, data, method=method, points=0, accelerator=accelerator,
                                                           progress=False).network
        line = interpolate(a, end, data, t=ts, splits=list(splits), bn_batches=bn_batches, accelerator=accelerator, progress=False)
        return saved(line, out, tensorboard=True)

    return Stage(f"line_step{step}_{kind}", walk, [out / "path.csv", out / "summary.json", out / "path.png"],
                 {"grid": ts, "splits": list(splits), "bn_batches": bn_batches, "method": method if kind == "aligned" else None},
                 inputs=[a, b], depends=[f"child_step{step}_{i}" for i in (0, 1)], load=lambda: PathResult.load(out, "interpolate"))


def stability(
    endpoint_config: str | Path = "configs/digits/stability_mlp.yaml",
    out: str | Path = "runs/stability",
    steps: Sequence[int] = (0, 25, 100, 250, 400),
    seed: int = 1,
    data_seeds: Sequence[int] = (2, 3),
    overrides: Sequence[str] = (),
    points: int = 11,
    splits: Sequence[Literal["train", "test"]] = ("train", "test"),
    split: Literal["train", "test"] = "test",
    threshold: float = 0.02,
    align: Literal["activation", "weight"] | None = None,
    bn_batches: int | None = None,
    accelerator: str = "auto",
) -> StabilityResult:
    """Train the parent and the children of every spawn step into ``out`` and report the barriers vs step.

    Every stage (the parent, each child, each line, the report) is skipped when its outputs exist for the
    same settings, so an interrupted study resumes where it stopped and nothing finished is redone; a
    child killed mid-way goes on from its own last epoch. The report is ``out/report``.

    Args:
        endpoint_config: the fit config of parent and children (a path or a recipe name); its max_epochs is their length.
        out: the study's folder.
        steps: spawn steps k in optimizer steps (0: the initialization); each at most the parent's length.
        seed: the parent's initialization and data order.
        data_seeds: the two children's data-order seeds, used at every k (equal seeds: identical children).
        overrides: options added to every fit (parent and children alike), e.g. ``--trainer.max_epochs=3``.
        points: grid points of each line on [0, 1].
        splits: splits every line is evaluated on.
        split: the split the stable-from step is read on (Frankle et al. use test error).
        threshold: a spawn step is stable when its error barrier is below this (0.02: 2 percentage points).
        align: also walk the line to the second child aligned to the first (activation or weight matching).
        bn_batches: training batches for BatchNorm statistics at each t; None a full pass, 0 off.
        accelerator: cpu, cuda or auto for the evaluations.
    """
    steps = sorted(set(steps))
    if not steps or any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in steps):
        raise LandscapeError(f"steps={list(steps)}: give spawn steps as optimizer steps, whole numbers >= 0 (0: the initialization)")
    if len(data_seeds) != 2:
        raise LandscapeError(f"data_seeds={list(data_seeds)}: give the two children's data-order seeds")
    if split not in splits:
        raise LandscapeError(f"split={split!r} is not among splits={list(splits)}: the stable-from step is read on it")
    if not threshold > 0:
        raise LandscapeError(f"threshold={threshold}: an error barrier threshold must be above 0 (e.g. 0.02)")
    ts = t_grid(0.0, 1.0, points)
    if len(ts) < 3:
        raise LandscapeError(f"points={points}: a barrier needs a point between the children; give at least 3")
    config, root, layout, outcomes = find_config(endpoint_config), Path(out), Study(Path(out)), Outcomes()
    spawn = {"class_path": f"{SpawnCheckpoints.__module__}.{SpawnCheckpoints.__qualname__}", "init_args": {"steps": steps}}
    parent = endpoint_stage("parent", layout.parent, config, seed, (*overrides, "--trainer.callbacks+=" + json.dumps(spawn)))
    stages = [replace(parent, outputs=[*parent.outputs, *(layout.spawned(k) for k in steps)])]
    kinds = ["unaligned"] + ([] if align is None else ["aligned"])
    for k in steps:
        stages += [child_stage(f"child_step{k}_{i}", layout, k, i, config, seed, data_seeds[i], overrides) for i in (0, 1)]
        stages += [line_stage(layout, k, kind, ts, splits, align, bn_batches, accelerator) for kind in kinds]
    lines = {(k, kind): f"line_step{k}_{kind}" for k in steps for kind in kinds}

    def report() -> StabilityResult:
        rows = [row for (k, kind), name in lines.items() for row in barrier_rows(k, kind, outcomes[name])]
        seeds = {"seed": seed, "data_seeds": list(data_seeds)}
        return saved(StabilityResult(rows, summarize(rows, steps, total_steps(layout.spawned(steps[0])), threshold, split, seeds)),
                     layout.report, tensorboard=True)

    stages.append(Stage("report", report, [layout.report / name for name in ("stability.csv", "stability.md", "stability.png",
                                                                              "summary.json")],
                        {"threshold": threshold, "split": split}, depends=list(lines.values()),
                        load=lambda: StabilityResult.load(layout.report)))
    run_stages(stages, root, outcomes=outcomes)
    return outcomes["report"]
