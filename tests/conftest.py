"""Shared fixtures: endpoints trained once per session through the CLI, as a user would train them."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from landscape_pl.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
NOTEBOOKS = ROOT / "notebooks"


def command_of(config: Path) -> str:
    """The subcommand a config is for: the one its usage comment names, else ``fit``."""
    usage = re.search(r"python -m landscape_pl ([\w-]+) .*--config", config.read_text())
    return usage.group(1) if usage else "fit"


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


@pytest.fixture(scope="session")
def kernel_dirs(tmp_path_factory) -> Path:
    """A python3 kernel spec of this very interpreter, first on JUPYTER_PATH: the notebooks run where
    landscape_pl is installed even on a machine whose only python3 kernel belongs to another Python."""
    import ipykernel.kernelspec

    prefix = tmp_path_factory.mktemp("jupyter")
    ipykernel.kernelspec.install(kernel_name="python3", prefix=str(prefix))
    kernel = json.loads((prefix / "share/jupyter/kernels/python3/kernel.json").read_text())
    assert kernel["argv"][0] == sys.executable
    return prefix / "share" / "jupyter"


def execute(name: str, variable: str, folder: Path, kernel_dirs: Path, monkeypatch) -> nbformat.NotebookNode:
    """Run notebooks/<name>.ipynb as Jupyter would (from notebooks/), reading ``folder``; outputs by cell."""
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dirs))
    monkeypatch.setenv(variable, str(folder))
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells), f"{name}.ipynb is committed with outputs"
    NotebookClient(notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode, kind: str) -> list[str]:
    """Every output of one MIME type (``image/png``, ``text/markdown``) or, with ``stream``, printed text."""
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if kind == "stream" and output.output_type == "stream":
                found.append(output.text)
            elif kind in output.get("data", {}):
                found.append(output.data[kind])
    return found
