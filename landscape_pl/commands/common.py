"""What the analysis commands share: finding a run's data config, devices, and checkpoints by name."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
import yaml

from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.errors import LandscapeError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def find_config(config: str) -> Path:
    """A config path as given, else relative to the repository's configs/ folder."""
    for candidate in (Path(config), CONFIGS / config, CONFIGS.parent / config):
        if candidate.is_file():
            return candidate
    raise LandscapeError(f"config {config!r} not found (looked in the current folder and {CONFIGS})")


def run_config(checkpoint: str | Path) -> Path | None:
    """The config.yaml LightningCLI saved for the run a checkpoint belongs to (<run>/checkpoints/x.ckpt)."""
    candidate = Path(checkpoint).resolve().parent.parent / "config.yaml"
    return candidate if candidate.is_file() else None


def resolve_data(data: LandscapeDataModule | None, checkpoint: str | Path) -> LandscapeDataModule:
    """The data module given, else the one in the run's saved config."""
    if data is not None:
        return data
    config = run_config(checkpoint)
    if config is None:
        raise LandscapeError(
            f"no --data given and no config.yaml found next to {str(checkpoint)!r}'s run; "
            "pass --data (e.g. --data landscape_pl.data.DigitsDataModule)"
        )
    section = (yaml.safe_load(config.read_text()) or {}).get("data")
    if not section:
        raise LandscapeError(f"{config} has no 'data' section; pass --data")
    return instantiate_data(section)


def instantiate_data(section: dict) -> LandscapeDataModule:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LandscapeDataModule, "data")
    return parser.instantiate_classes(parser.parse_object({"data": section})).data


def resolve_init(name: str, other: str) -> str:
    """``init`` stands for the initialization saved next to the other checkpoint."""
    if name != "init":
        return name
    if other == "init":
        raise LandscapeError("start and end cannot both be 'init'")
    return str(Path(other).parent / "init.ckpt")


def device(accelerator: str) -> torch.device:
    if accelerator == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if accelerator == "gpu":
        accelerator = "cuda"
    return torch.device(accelerator)


def fit_run(config: str | Path, root: str | Path, *overrides: str) -> Path:
    """``fit`` through the CLI (as a user would) into ``root``; returns its last.ckpt.

    A run that already has a last.ckpt is resumed in place (``--ckpt_path last``): an interrupted
    run trains on to its ``max_epochs`` and a finished one returns at once, so nothing finished is
    recomputed and nothing half-done is taken for finished. A run killed before its first last.ckpt
    left nothing to resume: its folder is cleared and the fit starts afresh in ``version_0``.
    """
    from landscape_pl.cli import LandscapeCLI

    root = Path(root)
    resume = ["--ckpt_path=last"] if list(root.glob("lightning_logs/version_*/checkpoints/last.ckpt")) else []
    if not resume and (root / "lightning_logs").exists():
        shutil.rmtree(root / "lightning_logs")
    progress = str(sys.stderr.isatty()).lower()  # bars on a terminal, not in logs (overrides may say otherwise)
    LandscapeCLI(args=["fit", "--config", str(config), f"--trainer.default_root_dir={root}",
                       f"--trainer.enable_progress_bar={progress}", "--trainer.enable_model_summary=false", *overrides, *resume])
    found = sorted(root.glob("lightning_logs/version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise LandscapeError(f"fit of {config} wrote no last.ckpt under {root}: add a ModelCheckpoint with save_last: true")
    return found[-1]
