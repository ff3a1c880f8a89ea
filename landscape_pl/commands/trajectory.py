"""``trajectory``: PCA and distances of recorded training trajectories; ``trajectory-experiment``: the
three experiments of Lipton (2016) (different inits, one init with different data orders, one run
cloned after k epochs into different data orders), each trained and reported by one command."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Literal

import numpy as np

from landscape_pl.analysis.trajectory import TrajectoryPCA, trajectory_pca
from landscape_pl.callbacks.trajectory import INDEX, SnapshotStore
from landscape_pl.errors import LandscapeError
from landscape_pl.fitting import fit_run
from landscape_pl.io import write_json
from landscape_pl.labels import distinct_labels
from landscape_pl.layout import config_of as run_config
from landscape_pl.recipes import find_config


def find_trajectories(paths: list[str]) -> list[Path]:
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
    with (out / "snapshots.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "step", "epoch", "from_origin", "from_init", *[f"pc{i + 1}" for i in range(k)]])
        for i in range(len(pca.run)):
            writer.writerow([pca.runs[pca.run[i]], int(pca.step[i]), int(pca.epoch[i]), repr(float(pca.from_origin[i])),
                             repr(float(pca.from_init[i])), *[repr(float(v)) for v in pca.projections[i]]])
    with (out / "final_distances.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", *pca.runs])
        for name, row in zip(pca.runs, pca.final_distances):
            writer.writerow([name, *[repr(float(v)) for v in row]])


def summary_of(pca: TrajectoryPCA) -> dict:
    finals = pca.final_distances[np.triu_indices(len(pca.runs), 1)]
    last = [int(np.nonzero(pca.run == r)[0][-1]) for r in range(len(pca.runs))]
    return {
        "runs": pca.runs,
        "snapshots": int(len(pca.run)),
        "explained_first_2": pca.explained(2),
        "explained_top_10": pca.explained(10),
        "explained_ratio": [float(r) for r in pca.ratio[:10]],
        "final_from_origin": {pca.runs[r]: float(pca.from_origin[i]) for r, i in enumerate(last)},
        "final_from_init": {pca.runs[r]: float(pca.from_init[i]) for r, i in enumerate(last)},
        "final_pairwise_distance": {"mean": float(finals.mean()), "min": float(finals.min()), "max": float(finals.max())}
        if len(finals) else None,
    }


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


def trajectory(
    runs: list[str],
    out: str = "runs/trajectory/report",
    components: int = 10,
    chunk_mb: int = 64,
    tensorboard: bool = True,
    progress: bool = True,
) -> dict:
    """PCA (via the T x T Gram matrix) of the snapshots of one or several runs together, and distances.

    Writes ``pca.json`` (explained variance of the first 2 and top 10 components, per-run final
    distances), ``snapshots.csv``, ``final_distances.csv`` and ``trajectory.png`` to ``out``.

    Args:
        runs: trajectory folders, or folders holding them (a run, or an experiment's output).
        out: report folder (and TensorBoard run ``out/tensorboard``).
        components: components whose coordinates are written.
        chunk_mb: memory for reading snapshot columns at a time.
        tensorboard: also log the figure and the headline numbers.
        progress: show a progress bar.
    """
    folders = find_trajectories(runs)
    labels = distinct_labels(folders)
    pca = trajectory_pca([SnapshotStore(f) for f in folders], labels, components, chunk_mb * 2**20, progress)
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    write_tables(pca, target)
    summary = summary_of(pca) | {"folders": [str(f) for f in folders]}
    write_json(summary, target / "pca.json")
    fig = figure(pca, ", ".join(labels) if len(labels) <= 6 else f"{len(labels)} runs")
    fig.savefig(target / "trajectory.png", dpi=120)
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(target / "tensorboard")) as writer:
            writer.add_scalar("trajectory/explained_first_2", summary["explained_first_2"], 0)
            writer.add_scalar("trajectory/explained_top_10", summary["explained_top_10"], 0)
            writer.add_figure("trajectory/pca", fig, 0, close=False)
    from landscape_pl.plots import plt

    plt.close(fig)
    print(f"explained variance: first 2 {100 * summary['explained_first_2']:.2f}%, top 10 "
          f"{100 * summary['explained_top_10']:.2f}%; wrote {target}/pca.json, snapshots.csv, trajectory.png")
    return summary


def clone_start(base: Path, target: Path) -> Path:
    """The base run's last checkpoint without its data-order state, so the clone shuffles by its own seed."""
    import torch
    import yaml

    checkpoint = torch.load(base, map_location="cpu", weights_only=False)
    config = run_config(base)
    data_class = (yaml.safe_load(config.read_text()) or {}).get("data", {}).get("class_path", "") if config else ""
    checkpoint.pop(data_class.rpartition(".")[2], None)
    checkpoint.get("callbacks", {}).pop(next((k for k in checkpoint.get("callbacks", {}) if "TrajectoryRecorder" in k), ""), None)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, target)
    return target


def trajectory_experiment(
    experiment: Literal["inits", "orders", "clone"],
    endpoint: str = "configs/digits/mlp.yaml",
    out: str = "runs/trajectory",
    runs: int = 5,
    epochs: int = 200,
    every_n_epochs: int = 10,
    clone_epochs: int = 10,
    seed: int = 1,
    components: int = 10,
    progress: bool = True,
) -> dict:
    """Train the runs of one of the paper's experiments with a TrajectoryRecorder, then report them together.

    ``inits``: run r starts from init seed ``seed + r`` with data seed ``seed + r``. ``orders``: all
    runs start from init seed ``seed``, run r shuffles with data seed ``seed + r``. ``clone``: one
    run (seeds ``seed``) trains ``clone_epochs`` epochs, then each clone resumes it (weights, optimizer
    and schedule) with data seed ``seed + 1 + r``; the clones' trajectories begin with the base's snapshots.
    Runs that have a last.ckpt are not retrained. The report is ``out/report`` (see ``trajectory``).

    Args:
        experiment: inits, orders or clone.
        endpoint: endpoint config (a path, or relative to configs/) with a ModelCheckpoint saving last.ckpt.
        out: experiment folder: one folder per run and ``report``.
        runs: number of runs (clones).
        epochs: epochs of every run (clones included).
        every_n_epochs: snapshot interval.
        clone_epochs: epochs before cloning (clone only).
        seed: first seed.
        components: components whose coordinates are written.
        progress: show progress bars.
    """
    if runs < 1 or epochs < 1:
        raise LandscapeError(f"runs={runs} and epochs={epochs} must be at least 1")
    if experiment == "clone" and not 0 < clone_epochs < epochs:
        raise LandscapeError(f"clone_epochs={clone_epochs} must be between 0 and epochs={epochs} (exclusive)")
    config_path, root = find_config(endpoint), Path(out)
    trajectories = []

    def run(name: str, init_seed: int, data_seed: int, n_epochs: int, *extra: str) -> Path:
        recorder = {"class_path": "landscape_pl.callbacks.TrajectoryRecorder",
                    "init_args": {"dirpath": str(root / name / "trajectory"), "every_n_epochs": every_n_epochs}}
        return fit_run(config_path, root / name, f"--trainer.max_epochs={n_epochs}", f"--model.init_args.init_seed={init_seed}",
                       f"--data.init_args.data_seed={data_seed}", "--trainer.callbacks+=" + json.dumps(recorder), *extra)

    if experiment == "clone":
        base = run("base", seed, seed, clone_epochs)
        for r in range(runs):
            folder = root / f"clone{r}"
            if not (folder / "trajectory" / INDEX).is_file():
                shutil.copytree(root / "base" / "trajectory", folder / "trajectory")
            start = clone_start(base, folder / "start.ckpt")
            last = run(f"clone{r}", seed, seed + 1 + r, epochs, f"--ckpt_path={start}")
            if not (last.parent / "init.ckpt").is_file():  # a clone's initialization is the base run's
                shutil.copyfile(base.parent / "init.ckpt", last.parent / "init.ckpt")
            trajectories.append(str(folder / "trajectory"))
    else:
        for r in range(runs):
            name = f"run{r}"
            run(name, seed + r if experiment == "inits" else seed, seed + r, epochs)
            trajectories.append(str(root / name / "trajectory"))
    summary = trajectory(trajectories, out=str(root / "report"), components=components, progress=progress)
    return summary | {"experiment": experiment}
