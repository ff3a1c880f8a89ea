"""The three experiments of Lipton (2016), trained here and analysed together: different inits, one
init with different data orders, one run cloned after k epochs into different data orders.

Each run is a ``fit`` with a TrajectoryRecorder (``fitting.fit_run``: a run with a last.ckpt is not
retrained, a shorter one trains on in place); the joint PCA is ``api.trajectories.trajectory_pca``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Literal

import torch
import yaml

from landscape_pl.api.trajectories import TrajectoryResult, trajectory_pca
from landscape_pl.atomic import copy_file, replacing
from landscape_pl.callbacks.trajectory import INDEX
from landscape_pl.errors import LandscapeError
from landscape_pl.fitting import fit_run
from landscape_pl.io import read_checkpoint
from landscape_pl.layout import claim, config_of, init_beside
from landscape_pl.recipes import find_config


def clone_start(base: Path, target: Path) -> Path:
    """The base run's last checkpoint without its data-order state, so the clone shuffles by its own seed."""
    checkpoint = read_checkpoint(base)
    config = config_of(base)
    data_class = (yaml.safe_load(config.read_text()) or {}).get("data", {}).get("class_path", "") if config else ""
    checkpoint.pop(data_class.rpartition(".")[2], None)
    checkpoint.get("callbacks", {}).pop(next((k for k in checkpoint.get("callbacks", {}) if "TrajectoryRecorder" in k), ""), None)
    with replacing(target, "wb") as handle:
        torch.save(checkpoint, handle)
    return target


def trajectory_experiment(
    experiment: Literal["inits", "orders", "clone"],
    endpoint: str = "configs/digits/mlp.yaml",
    out: str | Path = "runs/trajectory",
    runs: int = 5,
    epochs: int = 200,
    every_n_epochs: int = 10,
    clone_epochs: int = 10,
    seed: int = 1,
    components: int = 10,
    progress: bool = True,
) -> TrajectoryResult:
    """Train the runs of one experiment into ``out`` (one folder per run), each recording its trajectory
    every ``every_n_epochs`` epochs; return the joint PCA of their trajectories.

    ``inits``: run r starts from init seed ``seed + r`` with data seed ``seed + r``. ``orders``: all
    runs start from init seed ``seed``, run r shuffles with data seed ``seed + r``. ``clone``: one
    run (seeds ``seed``) trains ``clone_epochs`` epochs, then each clone resumes it (weights, optimizer
    and schedule) with data seed ``seed + 1 + r``; the clones' trajectories begin with the base's snapshots.
    ``endpoint`` is a fit config (a path, or relative to configs/) with a ModelCheckpoint saving last.ckpt.
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

    with claim(root):  # one experiment at a time in a folder
        if experiment == "clone":
            base = run("base", seed, seed, clone_epochs)
            for r in range(runs):
                folder = root / f"clone{r}"
                if not (folder / "trajectory" / INDEX).is_file():
                    shutil.copytree(root / "base" / "trajectory", folder / "trajectory")
                start = clone_start(base, folder / "start.ckpt")
                last = run(f"clone{r}", seed, seed + 1 + r, epochs, f"--ckpt_path={start}")
                if not init_beside(last).is_file():  # a clone's initialization is the base run's
                    copy_file(init_beside(base), init_beside(last))
                trajectories.append(str(folder / "trajectory"))
        else:
            for r in range(runs):
                name = f"run{r}"
                run(name, seed + r if experiment == "inits" else seed, seed + r, epochs)
                trajectories.append(str(root / name / "trajectory"))
    return trajectory_pca(trajectories, components=components, progress=progress)
