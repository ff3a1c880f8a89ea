"""Architectures as data: every network the project writes can be rebuilt from a small spec.

A checkpoint stores ``{"class_path": ..., "init_args": ...}`` next to the weights, so a curve point,
a bead or a permuted network is an ordinary checkpoint that any command can load without knowing
what produced it. Networks of this package record their own spec on construction; a user's own
``nn.Module`` gets one from the config it was built from (see ``describe``).
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from landscape_pl.trust import remember, resolve

Spec = dict[str, Any]


class Architecture(nn.Module):
    """Base class that remembers the constructor arguments, so ``describe`` needs no config."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "Architecture":
        obj = super().__new__(cls)
        bound = inspect.signature(cls.__init__).bind(None, *args, **kwargs)
        bound.apply_defaults()
        init_args = {k: v for k, v in list(bound.arguments.items())[1:]}
        object.__setattr__(obj, "_spec", {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": init_args})
        return obj

    def initialize(self) -> None:
        """An init scheme over the layers, run after every layer's own reset (``init_seed``); none by default."""


def describe(network: nn.Module, given: Spec | None = None) -> Spec:
    """The spec that rebuilds ``network``: its own record, else ``given`` (from a config).

    The class is running in this process, so the checkpoint this spec goes into can be read back here
    without ``--trust`` (``trust.remember``): a user's network trained from their own config or code.
    """
    spec = getattr(network, "_spec", None) or given
    if spec is None:
        raise ValueError(
            f"cannot describe {type(network).__name__} as a spec: build it from a config "
            "(class_path + init_args) or subclass landscape_pl.models.Architecture"
        )
    remember(spec["class_path"], type(network))
    return {"class_path": spec["class_path"], "init_args": dict(spec.get("init_args") or {})}


def build(spec: Spec, source: object = "network spec") -> nn.Module:
    """Instantiate a network from ``{"class_path", "init_args"}``; the error names the bad key.

    Every class (nested specs included) must be an ``nn.Module`` inside the trusted set (``trust``)
    before it is imported or called; ``source`` (the file the spec came from) heads the error.
    """
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise ValueError(f"a network spec needs a 'class_path' key, got {spec!r}")
    cls = resolve(spec["class_path"], nn.Module, source)
    init_args = dict(spec.get("init_args") or {})
    for key, value in init_args.items():
        if isinstance(value, dict) and "class_path" in value:
            init_args[key] = build(value, source)
    return cls(**init_args)
