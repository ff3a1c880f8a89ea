"""What the modules that learn a path between two endpoints share: CurveModule and PAMModule.

Both load two endpoint checkpoints of one network spec, take the task from them, and train through
a scratch copy of the network (never a submodule: it is neither trained nor saved itself) into
which θ(t) is written for each step; Lightning moves only submodules, so it follows on demand.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch import nn

from landscape_pl.errors import LandscapeError
from landscape_pl.io import LoadedNetwork, load_network, read_checkpoint
from landscape_pl.paths.anchors import NetworkSlots, check_compatible
from landscape_pl.tasks import get_task

CURVE_CLASS = "landscape_pl.modules.curve.CurveModule"


def parameters_of(network: nn.Module) -> dict[str, torch.Tensor]:
    """The entries a path between networks learns: the parameters (BatchNorm statistics are recomputed instead)."""
    return {name: p.detach() for name, p in network.named_parameters()}


def is_curve(checkpoint: dict) -> bool:
    hparams = checkpoint.get("hyper_parameters") or {}
    return "curve" in hparams and "free" in (checkpoint.get("state_dict") or {})


def load_endpoint(path: str, role: str) -> LoadedNetwork:
    """An endpoint network; a curve checkpoint given in its place gets an error saying what to do instead."""
    if is_curve(read_checkpoint(path)):
        raise LandscapeError(
            f"{role}={path!r} is a curve checkpoint, not an endpoint; export a point of it first "
            "(python -m landscape_pl curve-point --ckpt ... --t ...) or pass it as init="
        )
    return load_network(path)


class BetweenEndpoints(L.LightningModule):
    """Base of the modules that learn a path from ``start`` to ``end``: endpoints, spec check, task, scratch network."""

    def load_endpoints(self, start: str, end: str, task: str | None) -> tuple[LoadedNetwork, LoadedNetwork]:
        """Both endpoints (same spec, or an error naming both), and this module's ``spec`` and ``task`` from them."""
        a, b = load_endpoint(start, "start"), load_endpoint(end, "end")
        check_compatible([parameters_of(a.network), parameters_of(b.network)], (start, end))  # names the first differing entry
        if a.spec != b.spec:
            raise LandscapeError(f"start {start!r} and end {end!r} have different network specs: {a.spec} vs {b.spec}")
        self.spec, self.task = a.spec, get_task(task or a.task)
        self.hparams["task"] = self.task.name
        return a, b

    def keep_scratch(self, network: nn.Module, names: Sequence[str]) -> None:
        """The network θ(t) is written into, and its slots for the entries in ``names`` (anchor order)."""
        self.__dict__["network"] = network
        self.__dict__["slots"] = NetworkSlots(network, names)

    def ready_network(self) -> nn.Module:
        """The scratch network on this module's device."""
        if next(self.network.parameters()).device != self.device:
            self.network.to(self.device)
        return self.network
