"""A string of beads kept on disk: one ordinary checkpoint per bead plus ``string.json``, the index.

The index and every bead are written atomically, the index after every bead, so an interrupted run
leaves a string that a resumed run continues from exactly; a bead whose file cannot be read on resume
(lost or damaged outside a run) is dropped, and so trained again where the string needs it. Beads keep
a stable ``id`` (their file name); their order along the string is the order of ``beads`` in the index.
Segment profiles are cached in the index by the ids of their two beads, so nothing already evaluated
is evaluated again on resume.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape_pl.atomic import write_text
from landscape_pl.errors import LandscapeError
from landscape_pl.io import check_spec, load_network, save_network
from landscape_pl.layout import component
from landscape_pl.models.base import Spec
from landscape_pl.trust import UntrustedError

INDEX = "string.json"


@dataclass
class Bead:
    """One model on the string: its file, loss on the criterion split, depth (ends: 0) and steps trained."""

    id: int
    file: str
    loss: float
    depth: int = 0
    steps: int = 0


@dataclass
class Segment:
    """The interpolated loss between two neighbouring beads on a t grid."""

    ts: list[float]
    losses: list[float]

    @property
    def max_loss(self) -> float:
        return max(self.losses)

    def t_star(self, mode: str) -> float:
        """Where to insert a bead: the highest interior grid point ("max") or the middle ("midpoint")."""
        if mode == "midpoint":
            return 0.5
        interior = [(loss, t) for t, loss in zip(self.ts, self.losses) if 0 < t < 1]
        return max(interior)[1]


@dataclass
class BeadString:
    """The string in ``directory``: settings it was made with, beads in order, cached segments, progress."""

    directory: Path
    settings: dict[str, Any]
    spec: Spec
    task: str
    beads: list[Bead] = field(default_factory=list)
    segments: dict[str, Segment] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)

    # -- files -------------------------------------------------------------------------------------
    @classmethod
    def create(cls, directory: str | Path, settings: dict, ends: tuple[nn.Module, nn.Module], losses: tuple[float, float],
               spec: Spec, task: str) -> "BeadString":
        string = cls(Path(directory), dict(settings), spec, task, progress={"steps": 0, "rounds": 0})
        for end, loss in zip(ends, losses):
            string.add(len(string.beads), end, loss, depth=0)
        return string

    @classmethod
    def load(cls, directory: str | Path) -> "BeadString":
        path = Path(directory) / INDEX
        try:
            data = json.loads(path.read_text())
            string = cls(
                Path(directory), data["settings"], data["spec"], data["task"],
                [Bead(**b) for b in data["beads"]],
                {k: Segment(**s) for k, s in data["segments"].items()},
                data["progress"],
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise LandscapeError(f"{path} cannot be read as a string index ({err}); remove the folder or pick another --out") from None
        check_spec(string.spec, path)  # beads are built from it: a class outside the trusted set stops here
        return string

    def save(self) -> None:
        """Write the index atomically: a crash leaves the previous index or the new one, never half of one."""
        data = {
            "settings": self.settings, "spec": self.spec, "task": self.task,
            "beads": [asdict(b) for b in self.beads],
            "segments": {k: asdict(s) for k, s in self.segments.items()},
            "progress": self.progress,
        }
        write_text(self.directory / INDEX, json.dumps(data, indent=1) + "\n")

    # -- beads -------------------------------------------------------------------------------------
    def add(self, position: int, network: nn.Module, loss: float, depth: int, steps: int = 0) -> Bead:
        """Save ``network`` as a new bead at ``position`` in the string, then the index."""
        bead_id = max((b.id for b in self.beads), default=-1) + 1
        bead = Bead(bead_id, f"beads/bead_{bead_id:04d}.ckpt", float(loss), depth, steps)
        self.write(bead, network)
        self.beads.insert(position, bead)
        self.save()
        return bead

    def write(self, bead: Bead, network: nn.Module) -> None:
        """(Re)write a bead's checkpoint; an ordinary checkpoint that validate and interpolate load."""
        save_network(network, self.path(bead), self.task, self.spec, bead=asdict(bead))

    def path(self, bead: Bead) -> Path:
        """A bead's checkpoint: its ``file`` in the index, every part of it a plain name under the string's folder."""
        parts = str(bead.file).split("/")
        return self.directory.joinpath(*(component(part, f"{self.directory / INDEX}: bead {bead.id}'s file") for part in parts))

    def state(self, bead: Bead) -> dict[str, torch.Tensor]:
        return load_network(self.path(bead)).network.state_dict()

    def network(self, bead: Bead) -> nn.Module:
        return load_network(self.path(bead)).network

    def files(self) -> list[Path]:
        return [self.path(b) for b in self.beads]

    def drop_unreadable(self) -> None:
        """Take interior beads whose checkpoint cannot be read off the string, and their segments out of the
        cache, so the search trains them again (a bead with the same id overwrites the file); an end cannot
        be remade and is an error."""
        for index, bead in reversed(list(enumerate(self.beads))):
            path = self.path(bead)
            try:
                load_network(path)
            except UntrustedError:  # a planted bead is an attack to report, not damage to repair
                raise
            except LandscapeError as err:  # missing or damaged: nothing of it is used
                if index in (0, len(self.beads) - 1):
                    raise LandscapeError(f"{err}; it is an end of the string in {self.directory}, which is made from "
                                         "its ends: remove the folder (or pick another --out) and connect again") from None
                warnings.warn(f"{err}; bead {bead.id} is dropped from the string and trained again", stacklevel=2)
                self.beads.remove(bead)
                self.forget(bead)
                self.save()

    # -- segments ----------------------------------------------------------------------------------
    @staticmethod
    def key(left: Bead, right: Bead) -> str:
        return f"{left.id}-{right.id}"

    def segment(self, index: int) -> Segment | None:
        """The cached profile between beads ``index`` and ``index + 1``, if evaluated."""
        return self.segments.get(self.key(self.beads[index], self.beads[index + 1]))

    def forget(self, bead: Bead) -> None:
        """Drop cached segments touching a bead whose weights changed (the constrained variant)."""
        self.segments = {k: s for k, s in self.segments.items() if str(bead.id) not in k.split("-")}

    @property
    def interior(self) -> int:
        """Number of beads between the two ends: the paper's bead count."""
        return len(self.beads) - 2


def open_string(directory: str | Path, fixed: dict[str, Any]) -> BeadString | None:
    """The string already in ``directory`` if it was made with the same ``fixed`` settings; None if none."""
    if not (Path(directory) / INDEX).is_file():
        return None
    string = BeadString.load(directory)
    changed = {k: (string.settings.get(k), v) for k, v in fixed.items() if string.settings.get(k) != v}
    if changed:
        name, (old, new) = next(iter(changed.items()))
        raise LandscapeError(
            f"{Path(directory) / INDEX} was made with {name}={old!r}, not {new!r}: a resumed string keeps its "
            "settings (only budgets may change); pick another --out or remove the folder"
        )
    string.drop_unreadable()
    return string
