"""What the library accepts: networks in memory or checkpoints, data modules or plain DataLoaders.

Every library call starts here, so a user's ``nn.Module`` and a downloaded checkpoint are the same
thing to an analysis. Networks given in memory are copied: an analysis writes θ into its own copy
and never changes the caller's module.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch
from torch import nn

from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.data.loaders import Data, as_datamodule
from landscape_pl.data.saved import resolve_data
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network
from landscape_pl.models.base import Spec
from landscape_pl.modules.endpoint import EndpointModule

NetworkLike = Union[nn.Module, str, Path]


@dataclass
class Network:
    """A network ready to evaluate: the module (a private copy), where it came from, its spec and task."""

    module: nn.Module
    label: str
    spec: Spec | None = None
    task: str | None = None
    path: Path | None = None


def as_network(network: NetworkLike, label: str) -> Network:
    """A checkpoint path (loaded) or an nn.Module (copied); ``label`` names it in errors and titles.

    A network with NaN or inf in its weights is refused here, before any evaluation spends time on it.
    """
    if isinstance(network, nn.Module):
        if isinstance(network, EndpointModule):
            network = network.network  # the network inside, not the training wrapper
        given = Network(copy.deepcopy(network), label)
    elif isinstance(network, (str, Path)):
        loaded = load_network(network)
        given = Network(loaded.network, str(network), loaded.spec, loaded.task, loaded.path)
    else:
        raise LandscapeError(f"{label} must be an nn.Module or a checkpoint path, got {type(network).__name__}")
    check_finite(given)
    return given


def check_finite(network: Network, shown: int = 3) -> None:
    """Raise naming the first ``shown`` state entries holding NaN or inf, with how many and where the first is."""
    found = []
    for name, value in network.module.state_dict().items():
        if torch.is_floating_point(value) and not bool(torch.isfinite(value).all()):
            bad = ~torch.isfinite(value)
            first = [int(i) for i in bad.nonzero()[0]]
            found.append(f"{name} ({int(bad.sum())} of {value.numel()}, first at {first}: {value[tuple(first)].item()})")
    if found:
        more = f" and {len(found) - shown} more entries" if len(found) > shown else ""
        raise LandscapeError(f"{network.label} has non-finite weights (NaN or inf) in {'; '.join(found[:shown])}{more}: "
                             "a loss there means nothing; use a checkpoint from before training diverged")


def as_data(data: Data | None, *networks: Network) -> LandscapeDataModule:
    """The data given (module or loaders), else the data module saved with the last checkpoint's run."""
    task = next((n.task for n in networks if n.task), "classification")
    if data is not None:
        return as_datamodule(data, task)
    saved = next((n.path for n in reversed(networks) if n.path is not None), None)
    if saved is None:
        raise LandscapeError("data is needed for networks given in memory: pass a LandscapeDataModule or DataLoaders")
    return resolve_data(None, saved)


def task_of(data: LandscapeDataModule, *networks: Network) -> str:
    """The networks' recorded task, else the data's."""
    return next((n.task for n in networks if n.task), None) or data.task
