"""Training through LightningCLI, from a command line or from code (a study's stages).

``LandscapeCLI`` is LightningCLI with the project's defaults; ``fit_run`` trains one config into a
folder as a user's ``fit`` would, resuming a run interrupted there. Both live below the commands so
that studies and searches can train without importing the command line.
"""

from __future__ import annotations

import difflib
import re
import shutil
import sys
import warnings
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentParser
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from landscape_pl.atomic import replacing
from landscape_pl.console import quiet_lightning
from landscape_pl.errors import LandscapeError
from landscape_pl.layout import LAST, LOGS, Run, resumable

LIGHTNING = ("fit", "validate", "test", "predict")


OPTION = re.compile(r"(?:Option|does not accept option) '([^']+)'")
ANCESTOR = re.compile(r"""(?:- )?(?:Parser key "([^"]+)"|Problem with given class_path '([^']+)'):""")
GROUP = re.compile(r"Group '([^']+)' does not accept")
INLINE = re.compile(r"is not accepted\. Got value: Namespace\(class_path='([^']+)'")
NOT_KEYS = {"help", "config", "print_config", "subcommand"}
CONFIG_FLAGS = ("--config", "-c")


class UnknownKeys:
    """A jsonargparse parser mixin: a key nothing takes (a typo in a config file or an option) raises a
    LandscapeError naming the key, where it came from and the closest valid one, instead of the usage
    and a nested union error.

    Only parsers that would exit act; the internal ones (``exit_on_error=False``) report to their parent.
    """

    def error(self, message: str, ex: Exception | None = None):
        if self.exit_on_error:
            parser = getattr(ex, "subcommand_parser", None) or self
            found = unknown_key(message, parser, getattr(self, "args", None) or sys.argv[1:])
            if found is not None:
                raise LandscapeError(found) from None
        return super().error(message, ex)


class LandscapeParser(UnknownKeys, LightningArgumentParser):
    """LightningCLI's parser, saying plainly which key of a config is unknown."""


def unknown_key(message: str, parser: ArgumentParser, args: Sequence[str]) -> str | None:
    """``<where>: unknown key 'a.b.c'; did you mean 'd'?`` for jsonargparse's unknown-option error, else None.

    The key's place is read off the error's nesting (the ``Parser key`` and ``class_path`` lines above
    the option); the valid keys are the parser's own, or those of the innermost class named there.
    """
    lines = message.splitlines()
    at = next((i for i, line in enumerate(lines) if OPTION.search(line)), None)
    if at is None:
        return None
    option = OPTION.search(lines[at]).group(1).split(".")
    group = GROUP.search(lines[at])
    place: list[str] = [] if group is None else group.group(1).split(".")
    inline = INLINE.search(lines[at])  # a callable's class (an optimizer) is named on the option's own line
    owner = None if inline is None else inline.group(1)
    place += [] if inline is None else ["init_args"]
    depth = indent(lines[at])
    for line in reversed(lines[:at]):  # the lines above, each less indented than the last, are its ancestors
        if indent(line) >= depth:
            continue
        depth = indent(line)
        ancestor = ANCESTOR.fullmatch(line.strip())
        if ancestor is not None:
            key, class_path = ancestor.groups()
            place[:0] = key.split(".") if key else ["init_args"]
            owner = owner or class_path
    if owner is not None:
        valid = [key.split(".") for key in init_arguments(owner)]
    else:
        valid = [action.dest.split(".")[len(place):] for action in parser._actions
                 if action.dest not in NOT_KEYS and action.dest.startswith(".".join(place))]
    unknown, choices = first_unknown(option, valid)
    key = place + unknown
    match = difflib.get_close_matches(unknown[-1], choices, n=1)
    hint = f"did you mean '{match[0]}'?" if match else f"the keys there are: {', '.join(choices) or 'none'}"
    return f"{config_holding(key, args) or 'command line'}: unknown key '{'.'.join(key)}'; {hint}"


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def first_unknown(parts: list[str], valid: list[list[str]]) -> tuple[list[str], list[str]]:
    """The shortest prefix of ``parts`` that no valid key starts with, and the names valid at its last place."""
    for depth in range(len(parts)):
        here = sorted({v[depth] for v in valid if len(v) > depth and v[:depth] == parts[:depth]})
        if parts[depth] not in here:
            return parts[: depth + 1], here
    return parts, []


def init_arguments(class_path: str) -> list[str]:
    """The keys a class's init_args take, as jsonargparse reads them; none when it does not import."""
    module, _, name = class_path.rpartition(".")
    try:
        return ArgumentParser(exit_on_error=False).add_class_arguments(getattr(import_module(module), name), fail_untyped=False)
    except (ImportError, AttributeError, ValueError):
        return []


def config_files(args: Sequence[str]) -> list[Path]:
    """The files given to ``--config`` / ``-c`` (``--config=FILE`` too) in ``args``, in order."""
    values = []
    for i, arg in enumerate(args):
        flag, equals, value = arg.partition("=")
        if equals and flag in CONFIG_FLAGS:
            values.append(value)
        elif i > 0 and args[i - 1] in CONFIG_FLAGS:
            values.append(arg)
    return [Path(v) for v in values if Path(v).is_file()]


def config_holding(key: Sequence[str], args: Sequence[str]) -> Path | None:
    """The last ``--config`` file in ``args`` that holds ``key`` (through mappings, and any item of a list), if any."""
    def holds(node: object, key: Sequence[str]) -> bool:
        if not key:
            return True
        if isinstance(node, list):
            return any(holds(item, key) for item in node)
        return isinstance(node, dict) and key[0] in node and holds(node[key[0]], key[1:])

    return next((config for config in reversed(config_files(args)) if holds(yaml.safe_load(config.read_text()), key)), None)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but whole or not at all: the file is written next to its target and
    renamed into place (``atomic.replacing``). Lightning's own ``_atomic_save`` goes through the system's
    temporary folder, which is a copy, not a rename, when that folder is on another file system."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with replacing(path, "wb") as handle:
            torch.save(checkpoint, handle)


class LandscapeCLI(LightningCLI):
    """LightningCLI with the project's defaults: any LightningModule/DataModule chosen by class_path."""

    def __init__(self, args: Sequence[str] | None = None, run: bool = True) -> None:
        super().__init__(
            subclass_mode_model=True,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            parser_class=LandscapeParser,
            # only a training run's folder needs its config.yaml; validate/test/predict leave no files behind
            save_config_callback=SaveConfigCallback if not args or args[0] == "fit" else None,
            parser_kwargs={name: {"description": catalogue()} for name in LIGHTNING},  # shown by `fit --help` etc.
            args=args,
            run=run,
        )

    def before_fit(self) -> None:
        """Checkpoints are written atomically unless the config chose its own CheckpointIO.

        ``--ckpt_path last`` continues the latest run in place: same log version, same checkpoint folder.

        Lightning alone would open a new ``version_N`` whose checkpoint folder is empty and train from scratch.
        """
        strategy = self.trainer.strategy
        if type(strategy.checkpoint_io) is TorchCheckpointIO:
            strategy.checkpoint_io = AtomicCheckpointIO()
        if self.config_init[self.subcommand].get("ckpt_path") != "last":
            return
        from lightning.pytorch.loggers import TensorBoardLogger

        logger = self.trainer.logger
        if not isinstance(logger, TensorBoardLogger) or logger._version is not None:
            return
        versions = resumable(logger.root_dir)
        if not versions:
            raise LandscapeError(f"--ckpt_path last: no checkpoints/last.ckpt under {logger.root_dir}/version_*; nothing to resume")
        check_readable(Path(logger.root_dir) / versions[-1] / "checkpoints" / LAST)
        logger._version = versions[-1]


def check_readable(last: Path) -> None:
    """A corrupt last.ckpt (say, a run killed while saving it) is refused before Lightning's traceback,
    offering the newest epoch checkpoint beside it that still reads. One refused for what it holds
    (``trust``) keeps that error."""
    from landscape_pl.io import read_checkpoint
    from landscape_pl.trust import UntrustedError

    def readable(path: Path) -> bool:
        try:
            read_checkpoint(path)
        except UntrustedError:
            if path == last:
                raise
            return False
        except LandscapeError:
            return False
        return True

    if readable(last):
        return
    problem = f"--ckpt_path last: {last} cannot be read (corrupt or cut short)"
    epochs = sorted(last.parent.glob("epoch=*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    epoch = next((path for path in epochs if readable(path)), None)
    if epoch is None:
        raise LandscapeError(f"{problem}, and no epoch=*.ckpt in {last.parent} reads either: train afresh without --ckpt_path")
    raise LandscapeError(f"{problem}; resume from the newest readable epoch checkpoint instead: --ckpt_path {epoch} "
                         "(or copy it over last.ckpt to go on in place)")

def catalogue() -> str:
    """The models, data modules and modules a config can name, for every --help."""
    from landscape_pl import data, models, modules

    def names(package) -> str:
        return ", ".join(f"{package.__name__}.{n}" for n in package.__all__ if n[0].isupper())

    return (
        f"Lightning modules: {names(modules)}\n"
        f"Networks (model.init_args.network): {names(models)}\n"
        f"Data modules (data): {names(data)}"
    )


def run_cli(args: Sequence[str]) -> LandscapeCLI:
    """LandscapeCLI on an argument list built in code, quietly: one stage of a study prints no banners, tips or
    INFO lines of its own (Lightning's warning about not reading sys.argv is moot here)."""
    with quiet_lightning(info=False):
        return LandscapeCLI(args=list(args))


def fit_run(config: str | Path, root: str | Path, *overrides: str) -> Path:
    """``fit`` through the CLI (as a user would) into ``root``; returns its last.ckpt.

    A run that already has a last.ckpt is resumed in place (``--ckpt_path last``): an interrupted
    run trains on to its ``max_epochs`` and a finished one returns at once, so nothing finished is
    recomputed and nothing half-done is taken for finished. A run killed before its first last.ckpt
    left nothing to resume: its folder is cleared and the fit starts afresh in ``version_0``, so the
    run is always ``layout.Run(root)``.
    """
    root = Path(root)
    resume = ["--ckpt_path=last"] if resumable(root / LOGS) else []
    if not resume and (root / LOGS).exists():
        shutil.rmtree(root / LOGS)
    progress = str(sys.stderr.isatty()).lower()  # bars on a terminal, not in logs (overrides may say otherwise)
    with warnings.catch_warnings():
        if resume:  # the checkpoint folder is in use on purpose: the run goes on in place
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        run_cli(["fit", "--config", str(config), f"--trainer.default_root_dir={root}",
                 f"--trainer.enable_progress_bar={progress}", "--trainer.enable_model_summary=false", "--weights_only=true",
                 *overrides, *resume])
    last = Run(root).last
    if not last.is_file():
        raise LandscapeError(f"fit of {config} wrote no last.ckpt under {root}: add a ModelCheckpoint with save_last: true")
    return last
