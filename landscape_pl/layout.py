"""Where things are on disk: the one module that knows a run's and a study's folder layout.

A training run is what ``fit`` leaves under its ``--trainer.default_root_dir``: Lightning's
``lightning_logs/version_N`` with ``config.yaml`` (LightningCLI) and ``checkpoints/`` holding
``last.ckpt`` and the ``init.ckpt`` the endpoint module saves before the first step. A study's
stages each write one folder under the study root. Everything else asks here instead of
predicting or globbing paths of its own.

Names from configs, checkpoints and result files become path components only through ``component``,
nothing is removed outside the run's root (``inside``), and one process at a time writes into a
folder (``claim``).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from landscape_pl.errors import LandscapeError

LOGS = "lightning_logs"
FIRST_VERSION = "version_0"
LAST = "last.ckpt"
INIT = "init.ckpt"
CONFIG = "config.yaml"
LOCK = ".lock"
NAMES = "a name must be non-empty, must not start with '.', and must hold no '/', '\\' or NUL character"


def spawn_name(step: int) -> str:
    """The file of a run's whole training state at optimizer step ``step`` (callbacks.spawn writes it)."""
    return f"step={step}.ckpt"


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
    def parent(self) -> Run:
        """The run the stability study's children branch off."""
        return Run(self.root / "parent")

    def spawned(self, step: int) -> Path:
        """The parent's training state at ``step``, where two children start: beside its last.ckpt, so
        that its config.yaml (which data module's order state to drop) is found from it."""
        return self.parent.checkpoints / spawn_name(step)

    def child(self, step: int, index: int) -> Run:
        return Run(self.root / "children" / f"step{step}" / f"child{index}")

    def children_line(self, step: int, kind: str) -> Path:
        """The line between the two children spawned at ``step`` (``kind``: unaligned or aligned)."""
        return self.root / "barrier" / f"step{step}" / kind

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


def component(name: str, key: str) -> str:
    """``name`` (from ``key`` of a config, checkpoint or result file) as one folder or file name: never a
    path of its own (``/``, ``..``), a hidden file or nothing, so it cannot reach outside its folder."""
    if not isinstance(name, str):
        problem = "it is not text"
    elif not name:
        problem = "it is empty"
    elif name.startswith("."):
        problem = "it starts with '.'"
    elif any(c in name for c in "/\\\0"):
        problem = "it holds a path separator"
    else:
        return name
    raise LandscapeError(f"{key}: {name!r} cannot name a folder or file ({problem}); {NAMES}")


def components(names: Iterable[str], key: str) -> list[str]:
    """Each name checked by ``component``, and no two the same, ignoring case (one folder on a case-insensitive disk)."""
    seen: dict[str, str] = {}
    for name in names:
        folded = component(name, key).casefold()
        if folded in seen:
            raise LandscapeError(f"{key}: {seen[folded]!r} and {name!r} would share one folder (names must differ in more "
                                 "than case); rename one")
        seen[folded] = name
    return list(seen.values())


def inside(path: str | Path, root: str | Path, what: str) -> Path:
    """``path``, refused unless it resolves to somewhere strictly under ``root`` (symbolic links followed)."""
    resolved, base = Path(path).resolve(), Path(root).resolve()
    if base not in resolved.parents:
        raise LandscapeError(f"{what} {str(path)!r} resolves to {str(resolved)!r}, outside {str(base)!r}: "
                             "nothing outside a run's folder is written or removed")
    return Path(path)


_CLAIMED: set[Path] = set()  # folders this process holds the lock of


RANKS = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")  # where Lightning reads a process's rank, in its order


def launched_beside_rank_zero() -> bool:
    """A process torchrun, srun or Lightning's DDP launcher started beside rank 0 (or on another node),
    replaying the same command into the same folder: rank 0 holds that folder's claim for all of them."""
    rank = next((os.environ[name] for name in RANKS if os.environ.get(name)), "0")
    return int(rank) > 0 or int(os.environ.get("NODE_RANK") or 0) > 0


@contextmanager
def claim(folder: str | Path) -> Iterator[Path]:
    """Hold ``folder`` (created if missing) for this process: ``folder/.lock`` records its pid, host and
    start. Another process's live claim is refused in one line; the lock of a process that is gone from
    this host is taken over. Inside a folder this process holds already (a study's stage saving into
    its own subfolder) the claim is the held one."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    resolved = folder.resolve()
    if launched_beside_rank_zero() or any(held == resolved or held in resolved.parents for held in _CLAIMED):
        yield folder
        return
    lock = folder / LOCK
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    create_lock(lock, record)
    _CLAIMED.add(resolved)
    try:
        yield folder
    finally:
        _CLAIMED.discard(resolved)
        if lock.is_file() and lock.read_text() == record:
            lock.unlink()
        if created and not any(folder.iterdir()):  # a run refused before writing anything leaves no folder behind
            folder.rmdir()


def create_lock(lock: Path, record: str) -> None:
    """Create ``lock`` holding ``record``, or take it over from a process that no longer runs."""
    for _ in range(3):  # a lock taken over or released between two looks is looked at again
        try:
            descriptor = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                held = lock.read_text()
            except FileNotFoundError:
                continue
            if not stale_lock(held):
                raise LandscapeError(in_use(lock, held)) from None
            stale = lock.with_name(f"{LOCK}.stale-{os.getpid()}")
            try:
                os.rename(lock, stale)  # of two processes taking over one lock, only one moves it
            except FileNotFoundError:
                continue
            if stale.read_text() == held:
                stale.unlink()
            else:  # the lock of a process that took it over a moment before: give it back
                os.rename(stale, lock)
            continue
        with open(descriptor, "w") as handle:
            handle.write(record)
        return
    raise LandscapeError(in_use(lock, lock.read_text() if lock.is_file() else ""))


def lock_record(record: str) -> dict:
    try:
        found = json.loads(record)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def stale_lock(record: str) -> bool:
    """Whether the lock's process has ended: only a process on this host can be looked up."""
    found = lock_record(record)
    if found.get("host") != socket.gethostname() or not isinstance(found.get("pid"), int):
        return False
    try:
        os.kill(found["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return found["pid"] == os.getpid()  # this process, but not holding it (_CLAIMED): left by an earlier process


def in_use(lock: Path, record: str) -> str:
    found = lock_record(record)
    who = f"process {found.get('pid', '?')} on {found.get('host', '?')} (started {found.get('started', '?')})"
    return (f"{lock.parent} is in use by {who}; wait for it or choose another --out; "
            f"if no such process runs, delete {lock}")
