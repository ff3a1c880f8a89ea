"""Which classes a file read back may name, so that opening a downloaded checkpoint never runs code.

Checkpoints, safetensors files, string indexes and run folders name classes by ``class_path``.
Importing a module runs its code and calling a class runs its constructor, so a name read from a
file is checked against the trusted set before anything is imported: the defaults of its kind
(networks: ``landscape_pl.models``, ``torch.nn``, ``torchvision.models``; Lightning modules: the
package itself), the module prefixes in ``LANDSCAPE_TRUST`` (comma-separated), those given with
``--trust`` (``trust``), and the classes this process itself described for a checkpoint
(``remember``: a user's own network trained from their fit config or saved from their code).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from landscape_pl.errors import LandscapeError

ENV = "LANDSCAPE_TRUST"
OPTION = "--trust"
NETWORKS = ("landscape_pl.models", "torch.nn", "torchvision.models")
MODULES = ("landscape_pl",)  # its LightningModules; checkpoints name them e.g. landscape_pl.EndpointModule
_trusted: set[str] = set()  # prefixes given with --trust, and class paths this process wrote (remember)


class UntrustedError(LandscapeError):
    """A file names a class outside the trusted set: the message names the file, the class and how to trust it."""


def trust(*prefixes: str) -> None:
    """Trust these module prefixes (or exact class paths) for the rest of this process."""
    _trusted.update(p.strip() for p in prefixes if p.strip())


def trusted_prefixes(defaults: Sequence[str] = NETWORKS) -> tuple[str, ...]:
    """The defaults of a kind, then ``LANDSCAPE_TRUST``'s prefixes (read on every check), then this process's."""
    from_env = [p.strip() for p in os.environ.get(ENV, "").split(",") if p.strip()]
    return (*defaults, *from_env, *sorted(_trusted))


def check(class_path: object, source: object, defaults: Sequence[str] = NETWORKS) -> str:
    """``class_path`` when it lies inside the trusted set; otherwise UntrustedError, and nothing is imported."""
    if not isinstance(class_path, str) or not all(part.isidentifier() for part in class_path.split(".")):
        raise UntrustedError(f"{source}: class_path {class_path!r} is not a dotted Python name; refused")
    if not any(class_path == p or class_path.startswith(p + ".") for p in trusted_prefixes(defaults)):
        module = class_path.rpartition(".")[0] or class_path
        raise UntrustedError(
            f"{source}: class_path {class_path!r} is not trusted, so nothing of it was imported; if you trust this "
            f"file and its author, trust the module with --trust {module} (or {ENV}={module})"
        )
    return class_path


def resolve(class_path: object, base: type, source: object, defaults: Sequence[str] = NETWORKS) -> type:
    """The class a trusted ``class_path`` names; it must subclass ``base``, or it is refused uncalled."""
    module_name, _, name = check(class_path, source, defaults).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise LandscapeError(f"{source}: class_path {class_path!r} cannot be imported: {err}") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise UntrustedError(f"{source}: class_path {class_path!r} is not a {base.__module__}.{base.__qualname__} subclass; refused")
    return cls


def remember(class_path: str, cls: type) -> None:
    """Trust ``class_path`` in this process when it already names ``cls`` (looked up, never imported).

    Called when this process describes a network it holds for a checkpoint: its class is already
    running here, so reading the checkpoint back in the same process builds nothing new.
    """
    module_name, _, name = class_path.rpartition(".")
    if getattr(sys.modules.get(module_name), name, None) is cls:
        _trusted.add(class_path)


def take_option(argv: Sequence[str]) -> list[str]:
    """``argv`` without its ``--trust PREFIX[,PREFIX]`` / ``--trust=...`` options, whose prefixes are now trusted."""
    rest, args = [], iter(argv)
    for arg in args:
        flag, equals, value = arg.partition("=")
        if flag != OPTION:
            rest.append(arg)
            continue
        value = value if equals else next(args, "")
        if not value or value.startswith("-"):
            raise LandscapeError(f"{OPTION} needs module prefixes to trust, e.g. {OPTION} mypackage.nets (comma-separated)")
        trust(*value.split(","))
    return rest
