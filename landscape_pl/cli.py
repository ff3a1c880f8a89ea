"""One command line: Lightning's fit/validate/test/predict, plus the analyses as subcommands.

``python -m landscape_pl fit --config configs/digits/mlp.yaml`` trains through LightningCLI;
``python -m landscape_pl interpolate --help`` (and the other analyses) are typed functions whose
arguments jsonargparse reads from the command line or a ``--config`` file. ``--config`` also takes a
packaged recipe by path or name (``--config alignment_digits``; ``python -m landscape_pl recipes`` lists them).
"""

from __future__ import annotations

import atexit
import importlib
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml
from jsonargparse import ArgumentParser, auto_parser

from landscape_pl.console import quiet_lightning
from landscape_pl.errors import LandscapeError, user_error
from landscape_pl.fitting import CONFIG_FLAGS, LIGHTNING, LandscapeCLI, UnknownKeys, catalogue, config_files
from landscape_pl.recipes import find_config
from landscape_pl.trust import take_option

__all__ = ["LandscapeCLI", "main"]
# name -> "module:function"; imported only when called, so `--help` stays fast.
COMMANDS = {
    "interpolate": ("landscape_pl.commands.interpolate:interpolate", "evaluate the straight line between two networks"),
    "lines": ("landscape_pl.commands.lines:lines", "straight-line studies: endpoints, the line on any t range, MLI variants (resumable)"),
    "curve": ("landscape_pl.commands.curve:curve", "evaluate a trained curve (fit with CurveModule) on a grid of t, BatchNorm recomputed"),
    "curve-point": ("landscape_pl.commands.curve:curve_point", "export one point of a trained curve as an endpoint checkpoint"),
    "curve-ensembles": ("landscape_pl.commands.curve:curve_ensembles", "ensembles along a curve vs independent checkpoints: a table"),
    "trajectory": ("landscape_pl.commands.trajectory:trajectory", "PCA and distances of recorded training trajectories"),
    "trajectory-experiment": ("landscape_pl.commands.trajectory:trajectory_experiment", "train and report one of the trajectory paper's experiments"),
    "mli": ("landscape_pl.commands.mli:mli", "monotonic linear interpolation from init: all/weights/biases, plateau, bias spread"),
    "plane": ("landscape_pl.commands.plane:plane", "loss and accuracy on the plane through three networks, or random directions"),
    "connect": ("landscape_pl.commands.connect:connect", "Dynamic String Sampling: a string of trained beads below a loss threshold"),
    "sweep": ("landscape_pl.commands.sweep:sweep", "DSS over thresholds x model pairs: mean normalized length and bead count vs L0"),
    "align": ("landscape_pl.commands.align:align", "permute the end network's units to match the start's (activations or weights); report"),
    "merge": ("landscape_pl.commands.merge:merge", "align N networks to one (or to their average), average, RESET/REPAIR them"),
    "study": ("landscape_pl.commands.study:study", "the alignment study: endpoints, alignment, 4 curve classes, tables (resumable)"),
    "stability": ("landscape_pl.commands.stability:stability", "stability to SGD noise: children spawned from a parent at steps k, error barrier vs k (resumable)"),
    "signature": ("landscape_pl.commands.signature:signature", "correlation signature between a midpoint (linear, or a curve's) and each endpoint"),
    "hessian": ("landscape_pl.commands.hessian:hessian", "the Hessian's eigenvalue density at one network (stochastic Lanczos quadrature)"),
    "export": ("landscape_pl.commands.export:export", "write a network as weights.safetensors (spec and task in its metadata) to share it"),
    "spec": ("landscape_pl.commands.spec:spec", "print a checkpoint's permutation groups (name, size, entries/axes) and check them by permuting a copy"),
    "recipes": ("landscape_pl.recipes:print_recipes", "list the packaged recipes (path, command, description); --config takes a path or a name"),
}
FILE_OUT = {"curve-point"}  # --out is the checkpoint written, not a folder
RECIPE_LIKE = re.compile(r"[\w./][\w./-]*")  # a path or a name; inline YAML or JSON given to --config is left alone


def usage() -> str:
    lines = ["usage: python -m landscape_pl COMMAND [--config FILE] [options]", "", "Commands:"]
    lines += [f"  {name:<12} LightningCLI {name} (see: python -m landscape_pl {name} --help)" for name in LIGHTNING]
    lines += [f"  {name:<12} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines + ["", catalogue()])


class CommandParser(UnknownKeys, ArgumentParser):
    """The analysis commands' parser: an unknown key in a config or an option is named, with the closest valid one."""


def run_command(name: str, args: Sequence[str]):
    """Parse the command's arguments, refuse an unusable ``--out`` before any work, then run it."""
    module_name, function_name = COMMANDS[name][0].split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    parser = auto_parser(function, as_positional=False, parser_class=CommandParser)
    config = parser.parse_args(list(args))
    check_out(name, config.get("out"))
    arguments = parser.instantiate(config)
    arguments.pop("config", None)
    return function(**arguments)


def check_out(name: str, out: str | None) -> None:
    """``--out`` must be somewhere the command can write: a folder (new or existing), or for the commands
    in FILE_OUT a file; a file in the way is refused here, before the work rather than after it."""
    if out is None:
        return
    given = Path(out)
    if name in FILE_OUT and given.is_dir():
        raise LandscapeError(f"--out {out} is an existing folder, but {name} writes one checkpoint file: "
                             f"give a file path such as {given / 'point.ckpt'}")
    folder = given.parent if name in FILE_OUT else given
    blocking = next(p for p in (folder, *folder.parents) if p.exists())  # '.' or '/' at the latest
    if blocking.is_dir():
        return
    where = "is an existing file" if blocking == given else f"lies inside {blocking}, an existing file"
    raise LandscapeError(f"--out {out} {where}, but {name} needs a folder there for what it writes: "
                         "give another --out, or move that file away")


def check_configs(argv: Sequence[str]) -> None:
    """An empty ``--config`` file (nothing, or comments only) is said to be empty, not "Unexpected config"."""
    for config in config_files(argv):
        try:
            empty = yaml.safe_load(config.read_text()) is None
        except yaml.YAMLError:
            continue  # jsonargparse names the syntax error and its line
        if empty:
            command = argv[0] if argv[0] in (*LIGHTNING, *COMMANDS) else "COMMAND"
            raise LandscapeError(f"{config}: the config file is empty (no keys, at most comments); put the command's "
                                 f"settings in it (python -m landscape_pl {command} --print_config shows them all) or leave out --config")


def model_from_checkpoint(argv: list[str]) -> list[str]:
    """A Lightning subcommand's arguments, made safe for its ``--ckpt_path`` and completed by it.

    Lightning loads with ``weights_only=True`` (appended, so it wins); the checkpoint (and any a
    ``--config`` file names) is read here first, so a class it names outside the trusted set stops the
    command before Lightning or jsonargparse import it; a ``.safetensors`` export becomes a temporary
    checkpoint for Lightning's loader; and ``validate --ckpt_path X`` with no model config takes the
    model from X, which records its network.
    """
    if not argv or argv[0] not in LIGHTNING:
        return argv
    from landscape_pl.io import SAFETENSORS, read_checkpoint

    argv = [*argv, "--weights_only=true"]
    for path in configured_checkpoints(argv):
        read_checkpoint(path)
    found = ckpt_argument(argv)
    if found is None or not Path(found[2]).is_file():
        return argv
    index, before, path = found
    checkpoint = read_checkpoint(path)
    if Path(path).suffix == SAFETENSORS:
        if argv[0] == "fit":
            raise LandscapeError(f"--ckpt_path {path!r} holds a network's weights, not a run to resume; fit resumes from "
                                 "a Lightning checkpoint (e.g. --ckpt_path last)")
        argv[index] = before + str(lightning_copy(checkpoint))
    if argv[0] == "fit" or any(a.startswith(("--model", "--config", "-c")) for a in argv):
        return argv
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    class_path = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    if class_path is None:
        return argv
    return [*argv, "--model", json.dumps({"class_path": class_path, "init_args": hparams})]


def ckpt_argument(argv: list[str]) -> tuple[int, str, str] | None:
    """The last ``--ckpt_path`` in ``argv`` (the one Lightning uses): where its path is, the text before the
    path in that argument (``--ckpt_path=`` or nothing) and the path."""
    found = None
    for i, arg in enumerate(argv):
        if arg.startswith("--ckpt_path="):
            found = (i, "--ckpt_path=", arg[len("--ckpt_path="):])
        elif arg == "--ckpt_path" and i + 1 < len(argv):
            found = (i + 1, "", argv[i + 1])
    return found


def configured_checkpoints(argv: list[str]) -> list[str]:
    """The checkpoint files the ``--config`` files in ``argv`` name as ``ckpt_path``: Lightning reads those too."""
    named = []
    for config in config_files(argv):
        try:
            values = yaml.safe_load(config.read_text())
        except yaml.YAMLError:
            continue  # jsonargparse names the syntax error and its line
        path = values.get("ckpt_path") if isinstance(values, dict) else None
        if isinstance(path, str) and Path(path).is_file():
            named.append(path)
    return named


def lightning_copy(checkpoint: dict) -> Path:
    """A checkpoint dict as a temporary ``.ckpt`` for Lightning's loader, removed when the process exits."""
    import torch

    folder = Path(tempfile.mkdtemp(prefix="landscape_pl_"))
    atexit.register(shutil.rmtree, folder, True)
    torch.save(checkpoint, folder / "weights.ckpt")
    return folder / "weights.ckpt"


def recipe_path(value: str) -> str:
    """A ``--config`` value as given when it is a file (or not a path at all), else the packaged recipe it names."""
    if Path(value).is_file() or not RECIPE_LIKE.fullmatch(value):
        return value
    return str(find_config(value))


def resolve_configs(argv: list[str]) -> list[str]:
    """Every ``--config NAME`` / ``--config=NAME`` (and ``-c``) through ``recipe_path``, so recipes run from any folder."""
    resolved = []
    for i, arg in enumerate(argv):
        flag, equals, value = arg.partition("=")
        if equals and flag in CONFIG_FLAGS:
            arg = f"{flag}={recipe_path(value)}"
        elif i > 0 and argv[i - 1] in CONFIG_FLAGS:
            arg = recipe_path(arg)
        resolved.append(arg)
    return resolved


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = take_option(argv)  # --trust PREFIX: trusted for this process (see landscape_pl.trust)
        argv = resolve_configs(argv)
        check_configs(argv)
        if not argv or argv[0] in ("-h", "--help"):
            print(usage())
        elif argv[0] in COMMANDS:
            run_command(argv[0], argv[1:])
        else:
            with quiet_lightning():  # also: we pass sys.argv on purpose, amended
                LandscapeCLI(args=model_from_checkpoint(argv))
    except Exception as err:
        cause = user_error(err)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        raise SystemExit(2) from None
