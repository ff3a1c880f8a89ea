"""Training trajectories as a library call: the joint PCA of several runs' snapshots, and their distances.

Runs are trajectory folders recorded by ``TrajectoryRecorder`` (or folders holding some), or runs a
notebook kept in memory: lists of snapshots, each an nn.Module or a state dict. Both are read the
same way, so the same snapshots give the same numbers wherever they are kept.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from landscape_pl.analysis.trajectory import TrajectoryPCA, summary_of
from landscape_pl.analysis.trajectory import trajectory_pca as joint_pca
from landscape_pl.api.result import Result
from landscape_pl.atomic import replacing, save_figure
from landscape_pl.callbacks.trajectory import INDEX, SnapshotStore, parameters_of
from landscape_pl.errors import LandscapeError
from landscape_pl.io import write_json
from landscape_pl.labels import distinct_labels

Snapshot = nn.Module | Mapping[str, torch.Tensor]
Run = str | Path | Sequence[Snapshot]


def flatten(snapshot: Snapshot) -> tuple[list[str], list[tuple[int, ...]], torch.Tensor]:
    """Names, shapes and the float32 vector TrajectoryRecorder would record: a module's parameters (the
    network inside a LightningModule), a state dict's floating-point entries."""
    if isinstance(snapshot, nn.Module):
        return parameters_of(getattr(snapshot, "network", snapshot))
    named = [(name, value) for name, value in snapshot.items() if torch.is_floating_point(value)]
    return [n for n, _ in named], [tuple(v.shape) for _, v in named], torch.cat([v.detach().reshape(-1).float() for _, v in named])


class MemoryTrajectory:
    """One run's snapshots held in memory, read as a SnapshotStore is; a snapshot's step and epoch are its index."""

    def __init__(self, snapshots: Sequence[Snapshot], label: str) -> None:
        if not snapshots:
            raise LandscapeError(f"run {label!r} holds no snapshots")
        flat = [flatten(s) for s in snapshots]
        self.names, self.shapes = flat[0][0], flat[0][1]
        for index, (names, shapes, _) in enumerate(flat):
            if names != self.names or shapes != self.shapes:
                raise LandscapeError(f"snapshot {index} of run {label!r} has other parameters than its first snapshot")
        self.data = torch.stack([vector.to("cpu", torch.float32) for *_, vector in flat]).numpy()
        self.numel = self.data.shape[1]
        self.snapshots = [{"step": i, "epoch": i} for i in range(len(flat))]

    def __len__(self) -> int:
        return len(self.snapshots)

    def columns(self, start: int, stop: int, *, out: np.ndarray) -> np.ndarray:
        """Entries [start, stop) of every snapshot, into the first columns of ``out``."""
        out[:, : stop - start] = self.data[:, start:stop]
        return out


def find_trajectories(paths: Sequence[str | Path]) -> list[Path]:
    """Each path is a trajectory folder, or a folder holding some (a run, an experiment): all of them, sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / INDEX).is_file():
            found.append(path)
            continue
        inside = sorted(p.parent for p in path.glob(f"**/{INDEX}"))
        if not inside:
            raise LandscapeError(f"{str(path)!r} is no trajectory folder and holds none ({INDEX} not found under it)")
        found += inside
    return found


def write_tables(pca: TrajectoryPCA, out: Path) -> None:
    """snapshots.csv (per snapshot: run, step, epoch, distances, coordinates) and final_distances.csv."""
    k = pca.projections.shape[1]
    with replacing(out / "snapshots.csv", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "step", "epoch", "from_origin", "from_init", *[f"pc{i + 1}" for i in range(k)]])
        for i in range(len(pca.run)):
            writer.writerow([pca.runs[pca.run[i]], int(pca.step[i]), int(pca.epoch[i]), repr(float(pca.from_origin[i])),
                             repr(float(pca.from_init[i])), *[repr(float(v)) for v in pca.projections[i]]])
    with replacing(out / "final_distances.csv", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", *pca.runs])
        for name, row in zip(pca.runs, pca.final_distances):
            writer.writerow([name, *[repr(float(v)) for v in row]])


def figure(pca: TrajectoryPCA, title: str = ""):
    """Left: the paths on the first two components, one colour per run (init ○, end ■). Middle:
    distances from origin and from init per epoch. Right: pairwise distances of the final solutions."""
    from landscape_pl.plots import plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    colours = plt.cm.tab10(np.arange(len(pca.runs)) % 10)
    y_of = pca.projections[:, 1] if pca.projections.shape[1] > 1 else np.zeros(len(pca.run))
    for r, name in enumerate(pca.runs):
        mine = pca.run == r
        x, y, epoch = pca.projections[mine, 0], y_of[mine], pca.epoch[mine]
        axes[0].plot(x, y, marker=".", color=colours[r], label=name)
        axes[0].plot(x[0], y[0], "o", mfc="none", color=colours[r])
        axes[0].plot(x[-1], y[-1], "s", color=colours[r])
        axes[1].plot(epoch, pca.from_origin[mine], color=colours[r], label=f"{name}: from origin")
        axes[1].plot(epoch, pca.from_init[mine], color=colours[r], linestyle="--", label=f"{name}: from init")
    ratio = list(pca.ratio) + [0.0]
    axes[0].set_xlabel(f"PC1 ({100 * ratio[0]:.2f}%)")
    axes[0].set_ylabel(f"PC2 ({100 * ratio[1]:.2f}%)")
    axes[0].set_title(f"first 2: {100 * pca.explained(2):.2f}%, top 10: {100 * pca.explained(10):.2f}%")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("Euclidean distance")
    for ax in axes[:2]:
        ax.legend(fontsize=7)
    image = axes[2].imshow(pca.final_distances, cmap="viridis")
    axes[2].set_xticks(range(len(pca.runs)), pca.runs, rotation=45, ha="right", fontsize=7)
    axes[2].set_yticks(range(len(pca.runs)), pca.runs, fontsize=7)
    axes[2].set_title("distance between final solutions")
    fig.colorbar(image, ax=axes[2])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@dataclass
class TrajectoryResult(Result):
    """The joint PCA (``pca``: per snapshot its run, step, epoch, coordinates and distances; variance per
    component; distances between final solutions) and ``summary`` (explained variance of the first 2
    and top 10 components, each run's final distances; the folders read, for runs on disk).

    Files: pca.json, snapshots.csv, final_distances.csv, trajectory.png (and TensorBoard: the explained
    variance and the figure).
    """

    pca: TrajectoryPCA
    summary: dict

    @property
    def title(self) -> str:
        runs = self.pca.runs
        return ", ".join(runs) if len(runs) <= 6 else f"{len(runs)} runs"

    def write(self, folder: Path, tensorboard: bool) -> None:
        from landscape_pl.plots import plt

        write_tables(self.pca, folder)
        write_json(self.summary, folder / "pca.json")
        fig = self.plot()
        save_figure(fig, folder / "trajectory.png")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            with SummaryWriter(str(folder / "tensorboard")) as writer:
                writer.add_scalar("trajectory/explained_first_2", self.summary["explained_first_2"], 0)
                writer.add_scalar("trajectory/explained_top_10", self.summary["explained_top_10"], 0)
                writer.add_figure("trajectory/pca", fig, 0, close=False)
        plt.close(fig)

    def plot(self):
        return figure(self.pca, self.title)


def run_labels(labels: Sequence[str] | None, default: list[str]) -> list[str]:
    """The labels given, one per run, else the default ones."""
    if labels is not None and len(labels) != len(default):
        raise LandscapeError(f"{len(labels)} labels for {len(default)} runs: give one label per run")
    return list(labels or default)


def trajectory_pca(runs: Sequence[Run], components: int = 10, chunk_mb: int = 64, progress: bool = True,
                   labels: Sequence[str] | None = None) -> TrajectoryResult:
    """PCA (via the T x T Gram matrix) of the snapshots of all ``runs`` together, and their distances.

    ``runs``: trajectory folders or folders holding them (named by what tells their paths apart), or
    in-memory runs, each a list of snapshots (nn.Modules or state dicts, step and epoch their index;
    named run0, run1, ...); ``labels`` names the runs instead. ``components``: coordinates kept per
    snapshot; ``chunk_mb``: memory for the parameter columns read at a time.
    """
    if not runs:
        raise LandscapeError("runs is empty: give trajectory folders, or in-memory runs (lists of snapshots)")
    on_disk = [isinstance(run, (str, Path)) for run in runs]
    if all(on_disk):
        folders = find_trajectories(runs)
        names = run_labels(labels, distinct_labels(folders))
        stores, read = [SnapshotStore(f) for f in folders], {"folders": [str(f) for f in folders]}
    elif not any(on_disk):
        names = run_labels(labels, [f"run{k}" for k in range(len(runs))])
        stores, read = [MemoryTrajectory(run, name) for run, name in zip(runs, names)], {}
    else:
        raise LandscapeError("runs are trajectory folders or in-memory runs (lists of snapshots), not a mix of both")
    pca = joint_pca(stores, names, components, chunk_mb * 2**20, progress)
    return TrajectoryResult(pca, summary_of(pca) | read)
