"""Short names for checkpoints and runs in titles, tables and legends."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

BOILERPLATE = ("trajectory", "lightning_logs", "checkpoints")


def short(path: str | Path) -> str:
    """A checkpoint named by its run: the last four parts of its path."""
    return "/".join(Path(path).parts[-4:])


def unambiguous(paths: Sequence[str | Path], full: bool = False) -> list[str]:
    """``short`` names, but a path in full (absolute) where its short name is another's or it is the same
    file as another under a different name (or everywhere, with ``full``): a message must say which is which."""
    shorts = [short(p) for p in paths]
    files = [Path(p).resolve() for p in paths]
    return [os.path.abspath(p) if full or shorts.count(name) > 1 or files.count(file) > 1 else name
            for p, name, file in zip(paths, shorts, files)]


def distinct_labels(paths: list[Path]) -> list[str]:
    """Short names that tell runs apart: the parts of their paths they do not share, less boilerplate
    folders (lightning_logs, version_*, checkpoints) and the file name where the folders suffice."""
    def meaningful(parts: tuple[str, ...]) -> list[str]:
        return [p for p in parts if p not in BOILERPLATE and not p.startswith("version_")]

    if len(paths) == 1:
        named = meaningful(paths[0].resolve().parent.parts)
        return [named[-1] if named and named[-1] else paths[0].name]
    common = os.path.commonpath([str(p.resolve()) for p in paths])
    parts = [meaningful(p.resolve().relative_to(common).parts) for p in paths]
    folders = ["/".join(p[:-1]) for p in parts]
    if all(folders) and len(set(folders)) == len(folders):
        return folders
    return ["/".join(p) or path.name for p, path in zip(parts, paths)]
