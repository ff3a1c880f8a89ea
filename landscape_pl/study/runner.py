"""Stages of a study that run once: skipped when their outputs exist for the same inputs and settings.

Each stage's fingerprint hashes its own settings and the fingerprints of the stages it depends on,
so changing one stage's config reruns it and everything downstream, and nothing else. An
interrupted study resumes at the first stage whose stamp is missing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landscape_pl.atomic import write_text
from landscape_pl.errors import LandscapeError
from landscape_pl.layout import claim, components, inside


@dataclass
class Stage:
    """One step: ``run`` must create every path in ``outputs``; ``inputs`` must exist before it runs.

    ``run`` returns the stage's result (a library Result, a checkpoint path); ``load`` reads the
    same result back from the outputs, for a stage that was done before this process started.
    """

    name: str
    run: Callable[[], Any]
    outputs: Sequence[Path]
    settings: dict = field(default_factory=dict)
    inputs: Sequence[Path] = ()
    depends: Sequence[str] = ()
    load: Callable[[], Any] | None = None


class Outcomes:
    """What each stage produced: kept in memory when it ran in this process, read from its files
    (once, when first asked) when it was done already, so later stages never re-read a fresh result."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._loaders: dict[str, Callable[[], Any]] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._values:
            if name not in self._loaders:
                raise LandscapeError(f"stage {name!r} has no result to read (it has no load, or has not run)")
            self._values[name] = self._loaders.pop(name)()
        return self._values[name]

    def ran(self, name: str, value: Any) -> None:
        self._values[name] = value
        self._loaders.pop(name, None)

    def done_before(self, name: str, load: Callable[[], Any] | None) -> None:
        self._values.pop(name, None)
        if load is not None:
            self._loaders[name] = load


def fingerprint(stage: Stage, upstream: dict[str, str]) -> str:
    text = json.dumps({"settings": stage.settings, "upstream": [upstream[d] for d in stage.depends]}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_stages(stages: Sequence[Stage], root: Path, log: Callable[[str], None] = print,
               outcomes: Outcomes | None = None) -> dict[str, str]:
    """Run the stages in order, skipping those already done with the same fingerprint.

    A stage's stamp is written before it runs (``done: false``) and completed after. A stage
    interrupted with the same settings runs again over what it left (fits resume from their last
    checkpoint); outputs stamped with other settings, or with no stamp at all, are removed first,
    so nothing stale is ever taken for the new settings' result. Stage names (stamp files) and
    outputs (what may be removed) are checked before anything runs, and ``root`` is held (``claim``)
    for the whole run, so a second run into it is refused instead of mixing with this one.
    """
    components((stage.name for stage in stages), "stage name")
    for stage in stages:
        for output in stage.outputs:
            inside(output, root, f"stage {stage.name!r} output")
    with claim(root):
        return run_claimed(stages, root, log, outcomes)


def run_claimed(stages: Sequence[Stage], root: Path, log: Callable[[str], None], outcomes: Outcomes | None) -> dict[str, str]:
    stamps = root / ".stages"
    done: dict[str, str] = {}
    for stage in stages:
        unknown = [d for d in stage.depends if d not in done]
        if unknown:
            raise LandscapeError(f"stage {stage.name!r} depends on {unknown[0]!r}, which is not an earlier stage")
        print_ = fingerprint(stage, done)
        stamp = stamps / f"{stage.name}.json"
        recorded = read_stamp(stamp)
        same = recorded.get("fingerprint") == print_
        if same and recorded.get("done", True) and all(Path(p).exists() for p in stage.outputs):
            log(f"[study] {stage.name}: done already, skipped")
            done[stage.name] = print_
            if outcomes is not None:
                outcomes.done_before(stage.name, stage.load)
            continue
        missing = [p for p in stage.inputs if not Path(p).exists()]
        if missing:
            raise LandscapeError(f"stage {stage.name!r} cannot run: its input {str(missing[0])!r} is missing")
        if same:
            log(f"[study] {stage.name}: {'interrupted before' if not recorded.get('done', True) else 'outputs missing'}, running again")
        else:
            if recorded:
                log(f"[study] {stage.name}: settings or inputs changed, rerunning")
            elif any(Path(p).exists() for p in stage.outputs):
                log(f"[study] {stage.name}: outputs without a record of their settings, rerunning")
            for output in stage.outputs:
                remove(Path(output), root)
            log(f"[study] {stage.name}: running")
        write_stamp(stamp, print_, False, stage.settings)
        value = stage.run()
        if outcomes is not None:
            outcomes.ran(stage.name, value)
        absent = [p for p in stage.outputs if not Path(p).exists()]
        if absent:
            raise LandscapeError(f"stage {stage.name!r} finished without writing {str(absent[0])!r}")
        write_stamp(stamp, print_, True, stage.settings)
        done[stage.name] = print_
    return done


def read_stamp(stamp: Path) -> dict:
    """A stage's record; none when missing or unreadable (its outputs are then rebuilt, never trusted)."""
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def write_stamp(stamp: Path, print_: str, done: bool, settings: dict) -> None:
    write_text(stamp, json.dumps({"fingerprint": print_, "done": done, "settings": settings}, indent=1, default=str))


def remove(path: Path, root: Path) -> None:
    """Delete a stage's output, only ever under the study's ``root``."""
    inside(path, root, "output to remove")
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
