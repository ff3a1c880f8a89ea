"""``trajectory``: PCA and distances of recorded training trajectories; ``trajectory-experiment``: the
three experiments of Lipton (2016) (different inits, one init with different data orders, one run
cloned after k epochs into different data orders), each trained and reported by one command.

The analysis is ``landscape_pl.api.trajectories.trajectory_pca``; the experiments' training is
``landscape_pl.study.trajectory``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from landscape_pl.api.trajectories import TrajectoryResult, trajectory_pca
from landscape_pl.study import trajectory as experiments


def report(result: TrajectoryResult, target: Path, tensorboard: bool) -> dict:
    """Write the result's files into ``target``, print the explained variance; the summary."""
    result.save(target, tensorboard)
    summary = result.summary
    print(f"explained variance: first 2 {100 * summary['explained_first_2']:.2f}%, top 10 "
          f"{100 * summary['explained_top_10']:.2f}%; wrote {target}/pca.json, snapshots.csv, trajectory.png")
    return summary


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
    return report(trajectory_pca(runs, components, chunk_mb, progress), Path(out), tensorboard)


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
    result = experiments.trajectory_experiment(experiment, endpoint, out, runs, epochs, every_n_epochs, clone_epochs, seed,
                                               components, progress)
    return report(result, Path(out) / "report", tensorboard=True) | {"experiment": experiment}
