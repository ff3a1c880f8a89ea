"""The recipes (configs) that ship inside landscape_pl, found by path or by name.

They are package data (``landscape_pl/configs``) read through ``importlib.resources``, so an installed
wheel has them wherever it runs; the repository's top-level ``configs`` is a link to the same folder.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path, PurePosixPath

from landscape_pl.errors import LandscapeError

CONFIGS = Path(str(files("landscape_pl") / "configs"))
PREFIX = "configs/"  # how recipes, the README and the usage lines name each other: configs/<folder>/<name>.yaml
USAGE = re.compile(r"python -m landscape_pl ([\w-]+) .*--config")
LISTING = "python -m landscape_pl recipes"


@dataclass(frozen=True)
class Recipe:
    """One packaged config: ``path`` relative to CONFIGS, the command that runs it, its first sentence."""

    name: str
    path: PurePosixPath
    command: str
    description: str

    @property
    def file(self) -> Path:
        return CONFIGS / self.path


def command_of(text: str) -> str:
    """The subcommand a recipe is for: the one its usage line names, else ``fit`` (tests/conftest.py's rule)."""
    usage = USAGE.search(text)
    return usage.group(1) if usage else "fit"


def description_of(text: str) -> str:
    """The first sentence of the leading comment, on one line; the "Small twin of:" mark and usage lines are skipped."""
    words = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        line = line.lstrip("#").strip()
        if line.startswith("Small twin of:"):
            continue
        if line.startswith("python -m landscape_pl"):
            break
        words.append(line.split("python -m landscape_pl", 1)[0])
    return re.split(r"(?<=[.!?])\s", " ".join(" ".join(words).split()), maxsplit=1)[0]


def recipes() -> list[Recipe]:
    """Every recipe under CONFIGS, sorted by path."""
    found = []
    for file in sorted(CONFIGS.rglob("*.yaml")):
        text = file.read_text()
        path = PurePosixPath(file.relative_to(CONFIGS).as_posix())
        found.append(Recipe(file.stem, path, command_of(text), description_of(text)))
    return found


def find_config(config: str | Path) -> Path:
    """An existing file as given; else a path under the packaged configs (``configs/x/y.yaml`` or ``x/y.yaml``);
    else a bare recipe name (``alignment_digits`` or ``alignment_digits.yaml``) matched anywhere in the tree."""
    given = Path(config)
    if given.is_file():
        return given
    relative = str(config).removeprefix(PREFIX)
    tried = [str(given), str(CONFIGS / relative)]
    if (CONFIGS / relative).is_file():
        return CONFIGS / relative
    if given.name == str(config):
        stem = given.name.removesuffix(".yaml")
        matches = [recipe for recipe in recipes() if recipe.name == stem]
        if len(matches) == 1:
            return matches[0].file
        if matches:
            names = ", ".join(f"{PREFIX}{recipe.path}" for recipe in matches)
            raise LandscapeError(f"config {str(config)!r} names several recipes: {names}; give one of these paths")
        tried.append(f"a recipe named {stem!r}")
    raise LandscapeError(f"config {str(config)!r} not found (tried {', '.join(tried)}); `{LISTING}` lists the recipes")


def listing(width: int = 150) -> str:
    """What ``python -m landscape_pl recipes`` prints: each recipe's path, command and description, by folder,
    a line each (descriptions shortened to fit ``width`` columns)."""
    found = recipes()
    path_width = max(len(str(recipe.path)) for recipe in found)
    command_width = max(len(recipe.command) for recipe in found)
    text_width = max(40, width - path_width - command_width - 6)
    lines = [f"Recipes in {CONFIGS}; run one with: python -m landscape_pl COMMAND --config PATH_OR_NAME"]
    folder = None
    for recipe in found:
        if recipe.path.parent != folder:
            folder = recipe.path.parent
            lines += ["", f"{folder}/"]
        lines.append(f"  {recipe.path!s:<{path_width}}  {recipe.command:<{command_width}}  "
                     f"{textwrap.shorten(recipe.description, text_width, placeholder=' ...')}")
    return "\n".join(lines)


def print_recipes() -> None:
    """List the recipes that ship with landscape_pl: --config takes any of their paths or bare names."""
    print(listing())
