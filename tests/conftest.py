"""Shared fixtures: endpoints trained once per session through the CLI, as a user would train them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from landscape_pl.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


@dataclass(frozen=True)
class Endpoints:
    """Two endpoints of one architecture: ``a``/``b`` are last.ckpt, ``*_init`` their init.ckpt,
    ``run_a``/``run_b`` their log dirs (config.yaml, TensorBoard events, checkpoints/)."""

    a: Path
    b: Path
    a_init: Path
    b_init: Path
    run_a: Path
    run_b: Path
    config: Path


def fit(config: Path, root: Path, seed: int, epochs: int = 2, *extra: str) -> Path:
    """One ``fit`` through the CLI; returns the run's log dir."""
    main([
        "fit", "--config", str(config), f"--trainer.max_epochs={epochs}", f"--trainer.default_root_dir={root}",
        f"--model.init_args.init_seed={seed}", f"--data.init_args.data_seed={seed}",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", *extra,
    ])
    (run,) = root.glob("lightning_logs/version_*")
    return run


def train_pair(tmp_path_factory: pytest.TempPathFactory, name: str, config: Path, epochs: int) -> Endpoints:
    runs = [fit(config, tmp_path_factory.mktemp(f"{name}_seed{seed}"), seed, epochs) for seed in (1, 2)]
    ckpt = [run / "checkpoints" for run in runs]
    return Endpoints(ckpt[0] / "last.ckpt", ckpt[1] / "last.ckpt", ckpt[0] / "init.ckpt", ckpt[1] / "init.ckpt",
                     runs[0], runs[1], config)


@pytest.fixture(scope="session")
def digits_endpoints(tmp_path_factory: pytest.TempPathFactory) -> Endpoints:
    """Two digits MLPs (configs/digits/mlp.yaml, 2 epochs) from init/data seeds 1 and 2."""
    return train_pair(tmp_path_factory, "digits_mlp", CONFIGS / "digits" / "mlp.yaml", 2)


@pytest.fixture(scope="session")
def digits_bn_endpoints(tmp_path_factory: pytest.TempPathFactory) -> Endpoints:
    """Two small Conv-BN-ReLU nets on 1x8x8 digits (configs/digits/tinynet.yaml, 2 epochs), seeds 1 and 2."""
    return train_pair(tmp_path_factory, "digits_bn", CONFIGS / "digits" / "tinynet.yaml", 2)
