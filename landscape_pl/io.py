"""Networks in and out of ordinary Lightning checkpoints, and result files next to TensorBoard runs.

A network checkpoint holds ``state_dict`` under the prefix ``network.`` and, in ``hyper_parameters``,
the spec that rebuilds the architecture. Endpoints, curve points, beads and permuted networks are
all written this way, so ``validate``, ``test`` and ``interpolate`` accept any of them.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from landscape_pl.errors import LandscapeError
from landscape_pl.models.base import Spec, build, describe
from landscape_pl.paths.evaluate import Row

PREFIX = "network."
ENDPOINT_CLASS = "landscape_pl.modules.endpoint.EndpointModule"


@dataclass
class LoadedNetwork:
    network: nn.Module
    spec: Spec
    task: str
    path: Path


def read_checkpoint(path: str | Path) -> dict:
    """torch.load with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise LandscapeError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise LandscapeError(f"checkpoint {str(path)!r} cannot be read ({type(err).__name__}: {err}); is it corrupt?") from None


def load_network(path: str | Path) -> LoadedNetwork:
    """Rebuild the network stored in a landscape_pl checkpoint, weights and BatchNorm statistics included."""
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") or {}
    spec = hparams.get("network")
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise LandscapeError(
            f"checkpoint {str(path)!r} holds no network spec (hyper_parameters.network); "
            "it was not written by an endpoint run, a curve export or a bead of landscape_pl"
        )
    network = build(spec)
    state = {k[len(PREFIX):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(PREFIX)}
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise LandscapeError(f"checkpoint {str(path)!r} does not match its own network spec: {err}") from None
    return LoadedNetwork(network, spec, hparams.get("task", "classification"), Path(path))


def network_checkpoint(network: nn.Module, task: str, spec: Spec | None = None, **extra: Any) -> dict:
    """A checkpoint dict that Lightning's ``--ckpt_path`` and ``EndpointModule.load_from_checkpoint`` accept."""
    hparams = {
        "_class_path": ENDPOINT_CLASS,
        "_instantiator": "lightning.pytorch.cli.instantiate_module",
        "network": describe(network, spec),
        "task": task,
    }
    return {
        "state_dict": {PREFIX + k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
        "hyper_parameters": hparams,
        "pytorch-lightning_version": L.__version__,
        "epoch": 0,
        "global_step": 0,
        **extra,
    }


def save_network(network: nn.Module, path: str | Path, task: str, spec: Spec | None = None, **extra: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(network_checkpoint(network, task, spec, **extra), path)
    return path


PATH_COLUMNS = ("t", "split", "loss", "accuracy")


def _number(value: float | None) -> str:
    """Finite numbers as repr; nan/inf spelled out so readers see them; None (no accuracy) empty."""
    if value is None:
        return ""
    return repr(float(value)) if math.isfinite(value) else str(float(value))


def write_path_csv(rows: Sequence[Row], path: str | Path) -> Path:
    """``t,split,loss,accuracy``: one row per point and split; accuracy empty for regression."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PATH_COLUMNS)
        for row in rows:
            writer.writerow([repr(float(row.key)), row.split, _number(row.loss), _number(row.accuracy)])
    return path


def read_path_csv(path: str | Path) -> list[Row]:
    with Path(path).open() as handle:
        return [
            Row(float(r["t"]), r["split"], float(r["loss"]), float(r["accuracy"]) if r["accuracy"] else None)
            for r in csv.DictReader(handle)
        ]


def write_json(data: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
