"""The stage every study starts with: an endpoint network trained from one seed by a fit config."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from landscape_pl.fitting import fit_run
from landscape_pl.layout import Run
from landscape_pl.study.runner import Stage


def file_digest(path: str | Path) -> str:
    """Content hash of a config, so editing the file reruns the stages that read it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def endpoint_stage(name: str, run: Run, config: Path, seed: int, overrides: Sequence[str] = ()) -> Stage:
    """Fit ``config`` into ``run`` with ``seed`` setting initialization and data order alike."""
    args = (f"--seed_everything={seed}", f"--model.init_args.init_seed={seed}", f"--data.init_args.data_seed={seed}", *overrides)
    return Stage(name, lambda: fit_run(config, run.root, *args), [run.root, run.last],
                 {"config": file_digest(config), "args": args}, load=lambda: run.last)
