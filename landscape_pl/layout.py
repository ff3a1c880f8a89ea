"""Where things are on disk: the one module that knows a run's and a study's folder layout.

A training run is what ``fit`` leaves under its ``--trainer.default_root_dir``: Lightning's
``lightning_logs/version_N`` with ``config.yaml`` (LightningCLI) and ``checkpoints/`` holding
``last.ckpt`` and the ``init.ckpt`` the endpoint module saves before the first step. A study's
stages each write one folder under the study root. Everything else asks here instead of
predicting or globbing paths of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from landscape_pl.errors import LandscapeError

LOGS = "lightning_logs"
FIRST_VERSION = "version_0"
LAST = "last.ckpt"
INIT = "init.ckpt"
CONFIG = "config.yaml"


@dataclass(frozen=True)
class Run:
    """One training run under ``root`` (the Trainer's default_root_dir), in Lightning's version folder."""

    root: Path
    version: str = FIRST_VERSION

    @property
    def folder(self) -> Path:
        return Path(self.root) / LOGS / self.version

    @property
    def checkpoints(self) -> Path:
        return self.folder / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / LAST

    @property
    def init(self) -> Path:
        return self.checkpoints / INIT

    @property
    def config(self) -> Path:
        return self.folder / CONFIG


def resumable(logs: str | Path) -> list[str]:
    """Versions in a logger's folder (``<root>/lightning_logs``) that have a last checkpoint, oldest first."""
    found = sorted(Path(logs).glob(f"version_*/checkpoints/{LAST}"), key=lambda p: p.stat().st_mtime)
    return [path.parent.parent.name for path in found]


def init_beside(checkpoint: str | Path) -> Path:
    """The initialization saved in the same checkpoints folder as ``checkpoint``."""
    return Path(checkpoint).parent / INIT


def config_of(checkpoint: str | Path) -> Path | None:
    """The config.yaml LightningCLI saved for the run a checkpoint belongs to (<run>/checkpoints/x.ckpt)."""
    candidate = Path(checkpoint).resolve().parent.parent / CONFIG
    return candidate if candidate.is_file() else None


def newest_last(folder: str | Path) -> Path | None:
    """The newest ``checkpoints/last.ckpt`` anywhere under a run or study folder."""
    found = sorted(Path(folder).glob(f"**/checkpoints/{LAST}"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


@dataclass(frozen=True)
class Study:
    """The stage folders of a study under ``root``: one per endpoint, alignment, curve, evaluation, plane."""

    root: Path

    def endpoint(self, seed: int, name: str | None = None) -> Run:
        return Run(self.root / "endpoints" / (f"{name}/seed{seed}" if name else f"seed{seed}"))

    def alignment(self, pair: int) -> Path:
        return self.root / "align" / f"pair{pair}"

    def curve(self, cls: str, pair: int) -> Run:
        return Run(self.root / "curves" / f"{cls}_pair{pair}")

    def evaluation(self, cls: str, pair: int) -> Path:
        return self.root / "evaluate" / f"{cls}_pair{pair}"

    def ensembles(self, cls: str, pair: int) -> Path:
        return self.root / "ensembles" / f"{cls}_pair{pair}"

    def plane(self, name: str) -> Path:
        return self.root / "planes" / name

    def line(self, name: str) -> Path:
        return self.root / "line" / name

    @property
    def mli(self) -> Path:
        return self.root / "mli"

    @property
    def report(self) -> Path:
        return self.root / "report"


def resolve_init(name: str, other: str) -> str:
    """``init`` stands for the initialization saved next to the other checkpoint."""
    if name != "init":
        return name
    if other == "init":
        raise LandscapeError("start and end cannot both be 'init'")
    return str(init_beside(other))
