"""Training trajectories on disk: the full parameter vector every N epochs or steps, streamed.

A trajectory folder holds ``snapshots.f32`` (snapshot after snapshot, each the network's parameters
flattened in ``named_parameters`` order as raw little-endian float32) and ``trajectory.json`` (names,
shapes, network spec and the step/epoch of each snapshot). The data is appended and flushed before
the index names it, so memory stays constant in the run's length, a run killed at any moment leaves
every indexed snapshot readable, and a resumed run appends to the same folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from landscape_pl.atomic import write_text
from landscape_pl.errors import LandscapeError

DATA, INDEX = "snapshots.f32", "trajectory.json"


class SnapshotStore:
    """One trajectory folder: append snapshots, read them back whole or by column ranges."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        index = self.folder / INDEX
        if not index.is_file():
            raise LandscapeError(f"{str(self.folder)!r} holds no trajectory ({INDEX} is missing); record one with "
                                 "the TrajectoryRecorder callback")
        meta = read_index(index)
        self.names: list[str] = meta["names"]
        self.shapes: list[tuple[int, ...]] = [tuple(s) for s in meta["shapes"]]
        self.spec: dict | None = meta.get("spec")
        self.snapshots: list[dict] = meta["snapshots"]
        self.numel = int(sum(int(np.prod(s)) for s in self.shapes))

    @classmethod
    def create(cls, folder: str | Path, names: Sequence[str], shapes: Sequence[Sequence[int]], spec: dict | None) -> "SnapshotStore":
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / DATA).write_bytes(b"")
        write_index(folder, {"format": 1, "dtype": "float32", "names": list(names),
                             "shapes": [list(s) for s in shapes], "spec": spec, "snapshots": []})
        return cls(folder)

    def __len__(self) -> int:
        return len(self.snapshots)

    @property
    def steps(self) -> list[int]:
        return [s["step"] for s in self.snapshots]

    def append(self, vector: torch.Tensor, step: int, epoch: int) -> None:
        """Write the data, flush it to disk, then name it in the index: an interruption loses at most this one."""
        array = vector.detach().to("cpu", torch.float32).numpy()
        if array.size != self.numel:
            raise LandscapeError(f"snapshot of {array.size} numbers does not fit trajectory {self.folder} ({self.numel} per snapshot)")
        with (self.folder / DATA).open("r+b") as handle:
            handle.truncate(len(self) * self.numel * 4)  # drop a partial write of an interrupted run
            handle.seek(0, os.SEEK_END)
            handle.write(array.astype("<f4", copy=False).tobytes())
            handle.flush()
            os.fsync(handle.fileno())
        self.snapshots.append({"step": int(step), "epoch": int(epoch)})
        self._save_index()

    def keep_until(self, step: int) -> None:
        """Forget snapshots taken after ``step`` (a resumed run retakes them from its checkpoint)."""
        kept = [s for s in self.snapshots if s["step"] <= step]
        if len(kept) != len(self.snapshots):
            self.snapshots = kept
            with (self.folder / DATA).open("r+b") as handle:
                handle.truncate(len(kept) * self.numel * 4)
            self._save_index()

    def _save_index(self) -> None:
        write_index(self.folder, read_index(self.folder / INDEX) | {"snapshots": self.snapshots})

    def read(self, index: int) -> np.ndarray:
        """Snapshot ``index`` (negative counts from the end) as a float32 vector."""
        index = range(len(self))[index]
        return self.columns(0, self.numel, rows=[index])[0]

    def columns(self, start: int, stop: int, rows: Sequence[int] | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Entries [start, stop) of the chosen snapshots as a (rows, stop - start) float32 array."""
        rows = range(len(self)) if rows is None else rows
        width = stop - start
        out = np.empty((len(rows), width), dtype="<f4") if out is None else out
        with (self.folder / DATA).open("rb") as handle:
            for i, row in enumerate(rows):
                handle.seek((row * self.numel + start) * 4)
                if handle.readinto(memoryview(out[i, :width]).cast("B")) != width * 4:
                    raise LandscapeError(f"{self.folder / DATA} is shorter than its index says (snapshot {row}); "
                                         "the file was truncated or overwritten")
        return out


def read_index(path: Path) -> dict:
    """``trajectory.json`` as data of the form an index has, or an error naming the file. Its spec is
    kept as data and never built here (``models.build`` checks a spec against the trusted set)."""
    try:
        meta = json.loads(path.read_text())
        names, shapes, snapshots, spec = meta["names"], meta["shapes"], meta["snapshots"], meta.get("spec")
        valid = (all(isinstance(n, str) for n in names) and len(shapes) == len(names)
                 and all(isinstance(d, int) and d >= 0 for shape in shapes for d in shape)
                 and all(isinstance(s["step"], int) and isinstance(s["epoch"], int) for s in snapshots)
                 and (spec is None or isinstance(spec, dict)))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise LandscapeError(f"{path} cannot be read as a trajectory index ({type(err).__name__}: {err})") from None
    if not valid:
        raise LandscapeError(f"{path} is not a trajectory index: its names, shapes or snapshots are not of the form "
                             "a TrajectoryRecorder writes")
    return meta


def write_index(folder: Path, meta: dict) -> None:
    """Replace the index atomically, so a reader never sees half of it."""
    write_text(folder / INDEX, json.dumps(meta, indent=1))


def parameters_of(network: nn.Module) -> tuple[list[str], list[tuple[int, ...]], torch.Tensor]:
    named = list(network.named_parameters())
    flat = torch.cat([p.detach().reshape(-1).float() for _, p in named])
    return [n for n, _ in named], [tuple(p.shape) for _, p in named], flat


class TrajectoryRecorder(L.Callback):
    """Save the network's full parameter vector every ``every_n_epochs`` epochs or ``every_n_steps`` steps.

    The initialization is the first snapshot (step 0). Only global rank 0 writes (DDP replicas agree).
    On resume from a checkpoint the folder named in the checkpoint is reopened, snapshots taken after
    the checkpoint's step are dropped, and recording continues in the same files.

    Args:
        dirpath: trajectory folder; default ``<run>/trajectory`` next to the run's ``checkpoints``.
        every_n_epochs: snapshot after every n-th training epoch (set 0 to use steps only).
        every_n_steps: snapshot after every n-th optimizer step (0: off).
        save_last: also snapshot the final weights when training ends off the schedule.
    """

    def __init__(self, dirpath: str | None = None, every_n_epochs: int = 1, every_n_steps: int = 0, save_last: bool = True) -> None:
        if every_n_epochs < 0 or every_n_steps < 0 or not (every_n_epochs or every_n_steps):
            raise LandscapeError(f"TrajectoryRecorder needs every_n_epochs or every_n_steps > 0, got {every_n_epochs} and {every_n_steps}")
        self.dirpath, self.every_n_epochs, self.every_n_steps, self.save_last = dirpath, every_n_epochs, every_n_steps, save_last
        self._resumed_dirpath: str | None = None
        self.store: SnapshotStore | None = None

    def folder(self, trainer: L.Trainer) -> Path:
        from landscape_pl.modules.endpoint import checkpoint_dir

        return Path(self.dirpath or self._resumed_dirpath or checkpoint_dir(trainer).parent / "trajectory")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        network = getattr(pl_module, "network", pl_module)
        names, shapes, _ = parameters_of(network)
        folder = self.folder(trainer)
        if (folder / INDEX).is_file():
            self.store = SnapshotStore(folder)
            if self.store.names != names or self.store.shapes != shapes:
                raise LandscapeError(f"trajectory {folder} was recorded for another architecture; pass another "
                                     "TrajectoryRecorder dirpath or remove the folder")
            # resuming: keep what the checkpoint had seen; a fresh run (step 0) starts the folder over
            self.store.keep_until(trainer.global_step if trainer.global_step else -1)
        else:
            from landscape_pl.models.base import describe

            try:
                spec = describe(network, pl_module.hparams.get("network") if hasattr(pl_module, "hparams") else None)
            except ValueError:
                spec = None
            self.store = SnapshotStore.create(folder, names, shapes, spec)
        if trainer.global_step == 0 or self._due(trainer.global_step, trainer.current_epoch):
            self._record(trainer, network, trainer.current_epoch)

    def _due(self, step: int, epochs_done: int) -> bool:
        return bool((self.every_n_steps and step % self.every_n_steps == 0)
                    or (self.every_n_epochs and epochs_done and epochs_done % self.every_n_epochs == 0))

    def _record(self, trainer: L.Trainer, network: nn.Module, epochs_done: int) -> None:
        """Append the parameters now, unless this step is already recorded (epoch and step schedules meet)."""
        step = trainer.global_step
        if self.store is None or (len(self.store) and self.store.steps[-1] == step):
            return
        self.store.append(parameters_of(network)[2], step, epochs_done)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._record(trainer, getattr(pl_module, "network", pl_module), trainer.current_epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._record(trainer, getattr(pl_module, "network", pl_module), trainer.current_epoch + 1)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.save_last:
            self._record(trainer, getattr(pl_module, "network", pl_module), trainer.current_epoch)

    def state_dict(self) -> dict:
        return {"dirpath": str(self.store.folder) if self.store is not None else self._resumed_dirpath}

    def load_state_dict(self, state_dict: dict) -> None:
        self._resumed_dirpath = state_dict.get("dirpath")
