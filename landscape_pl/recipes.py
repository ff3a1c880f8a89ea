"""The recipes (configs) that ship with landscape_pl, found by path or by name."""

from __future__ import annotations

from pathlib import Path

from landscape_pl.errors import LandscapeError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def find_config(config: str | Path) -> Path:
    """A config path as given, else relative to the configs/ folder."""
    config = str(config)
    for candidate in (Path(config), CONFIGS / config, CONFIGS.parent / config):
        if candidate.is_file():
            return candidate
    raise LandscapeError(f"config {config!r} not found (looked in the current folder and {CONFIGS})")
