"""Networks in and out of ordinary Lightning checkpoints, and result files next to TensorBoard runs.

A network checkpoint holds ``state_dict`` under the prefix ``network.`` and, in ``hyper_parameters``,
the spec that rebuilds the architecture. Endpoints, curve points, beads and permuted networks are
all written this way, so ``validate``, ``test`` and ``interpolate`` accept any of them; a
``.safetensors`` file (``export``) reads as the same checkpoint of its network.

Reading never runs code: checkpoints are unpickled with ``weights_only=True`` (tensors and plain
data), and every class their hyper-parameters name must lie in the trusted set (``trust``) before
anything, Lightning and jsonargparse included, imports it.
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import pickle
import re
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from landscape_pl.atomic import replacing, write_text
from landscape_pl.errors import LandscapeError
from landscape_pl.models.base import Spec, build, describe
from landscape_pl.paths.evaluate import Row
from landscape_pl.trust import MODULES, UntrustedError, check, resolve

PREFIX = "network."
ENDPOINT_CLASS = "landscape_pl.modules.endpoint.EndpointModule"
SAFETENSORS = ".safetensors"
PLAIN = (str, int, float, bool, type(None), Path, Any)  # argument types jsonargparse fills with data, importing nothing


@dataclass
class LoadedNetwork:
    network: nn.Module
    spec: Spec
    task: str
    path: Path


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint (or a ``.safetensors`` export, as the checkpoint of its network), read so that nothing
    in it runs code; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise LandscapeError(f"checkpoint {str(path)!r} does not exist")
    checkpoint = read_safetensors(path) if path.suffix == SAFETENSORS else unpickle(path)
    check_hyperparameters(checkpoint.get("hyper_parameters"), f"checkpoint {str(path)!r}")
    return checkpoint


def unpickle(path: Path) -> dict:
    """torch.load with ``weights_only=True``: an object other than tensors and plain data is refused, not built."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if "Weights only load failed" not in str(err) or found is None:  # damaged bytes, not a refused object
            raise LandscapeError(f"checkpoint {str(path)!r} cannot be read ({str(err).splitlines()[0]}); is it corrupt?") from None
        raise UntrustedError(
            f"checkpoint {str(path)!r} holds {found.group(1)}, which is not a tensor or plain data: "
            "unpickling it would run code, so it was refused; if you trust the file, load it yourself "
            "(torch.load(..., weights_only=False)) and save its network with lp.export or landscape_pl.io.save_network"
        ) from None
    except Exception as err:  # noqa: BLE001 - any other failure means the same thing to the user
        raise LandscapeError(f"checkpoint {str(path)!r} cannot be read ({type(err).__name__}: {err}); is it corrupt?") from None
    if not isinstance(checkpoint, dict):
        raise LandscapeError(f"checkpoint {str(path)!r} holds a {type(checkpoint).__name__}, not a checkpoint's dict")
    return checkpoint


def read_safetensors(path: Path) -> dict:
    """A ``.safetensors`` file as the checkpoint of its network: its tensors, and the spec and task in its metadata."""
    try:
        with safe_open(path, framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 - a safe_open handle, not a dict
    except (SafetensorError, OSError) as err:
        raise LandscapeError(f"checkpoint {str(path)!r} cannot be read as safetensors ({err}); is it corrupt?") from None
    try:
        spec = json.loads(metadata["spec"])
    except (KeyError, ValueError):
        raise LandscapeError(f"{str(path)!r} holds no network spec in its metadata ('spec'): it was not written by "
                             "landscape_pl's export (python -m landscape_pl export --ckpt X --out DIR)") from None
    return checkpoint_of(state, spec, metadata.get("task", "classification"))


def specs_in(value: Any) -> Iterator[dict]:
    """Every ``{"class_path": ...}`` dict inside ``value`` (nested dicts and lists included)."""
    if isinstance(value, dict):
        if "class_path" in value:
            yield value
        for item in value.values():
            yield from specs_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from specs_in(item)


def check_spec(spec: Any, source: object) -> None:
    """A network spec read from a file: a dict whose every class_path (nested ones too) lies in the trusted set."""
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise LandscapeError(f"{source}: a network spec needs a 'class_path' key, got {spec!r}")
    for inner in specs_in(spec):
        check(inner["class_path"], source)


def check_hyperparameters(hparams: Any, source: str) -> None:
    """Refuse hyper-parameters that would make Lightning or jsonargparse import or call anything untrusted.

    Lightning rebuilds a module from them (``--ckpt_path``, ``load_from_checkpoint``) through
    jsonargparse, which imports every class_path and reads a string given for a class- or
    callable-typed argument as an import path. So: ``_class_path`` must be a trusted LightningModule,
    every nested spec a trusted name, and an argument that is not plain data may hold a spec or None only.
    """
    if not hparams:
        return
    if not isinstance(hparams, dict):
        raise LandscapeError(f"{source}: hyper_parameters is a {type(hparams).__name__}, not a dict")
    for spec in specs_in(hparams):
        check(spec["class_path"], source)
    if "_class_path" not in hparams:
        return
    module = resolve(hparams["_class_path"], L.LightningModule, source, MODULES)
    try:
        hints = typing.get_type_hints(module.__init__)
    except Exception:  # noqa: BLE001 - hints that cannot be resolved: no argument counts as plain data
        hints = dict.fromkeys(hparams, object)
    for name in inspect.signature(module.__init__).parameters.keys() & hparams.keys():
        value = hparams[name]
        if value is None or plain(hints.get(name, Any)) or (isinstance(value, dict) and "class_path" in value):
            continue
        raise UntrustedError(f"{source}: hyper_parameters.{name} = {value!r} would be read as code ({module.__name__}'s "
                             f"{name} is a class or callable); a checkpoint's hyper-parameters may hold data only; refused")


def plain(annotation: Any) -> bool:
    """Whether an argument of this type takes data only: jsonargparse reads no import path for it."""
    if annotation in PLAIN:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return True
    containers = (typing.Union, types.UnionType, list, tuple, dict, Sequence)
    return origin in containers and all(plain(a) for a in typing.get_args(annotation) if a is not Ellipsis)


def load_network(path: str | Path) -> LoadedNetwork:
    """Rebuild the network stored in a landscape_pl checkpoint or safetensors export, weights and BatchNorm statistics included."""
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters") or {}
    spec = hparams.get("network")
    if not isinstance(spec, dict) or "class_path" not in spec:
        raise LandscapeError(
            f"checkpoint {str(path)!r} holds no network spec (hyper_parameters.network); "
            "it was not written by an endpoint run, a curve export or a bead of landscape_pl"
        )
    network = build(spec, f"checkpoint {str(path)!r}")
    state = {k[len(PREFIX):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(PREFIX)}
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise LandscapeError(f"checkpoint {str(path)!r} does not match its own network spec: {err}") from None
    return LoadedNetwork(network, spec, hparams.get("task", "classification"), Path(path))


def checkpoint_of(state: dict[str, torch.Tensor], spec: Spec, task: str) -> dict:
    """A network's checkpoint dict from its state, spec and task: what ``save_network`` writes and Lightning's ``--ckpt_path`` reads."""
    hparams = {
        "_class_path": ENDPOINT_CLASS,
        "_instantiator": "lightning.pytorch.cli.instantiate_module",
        "network": spec,
        "task": task,
    }
    return {
        "state_dict": {PREFIX + k: v for k, v in state.items()},
        "hyper_parameters": hparams,
        "pytorch-lightning_version": L.__version__,
        "epoch": 0,
        "global_step": 0,
    }


def network_checkpoint(network: nn.Module, task: str, spec: Spec | None = None, **extra: Any) -> dict:
    """A checkpoint dict that Lightning's ``--ckpt_path`` and ``EndpointModule.load_from_checkpoint`` accept."""
    state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
    return {**checkpoint_of(state, describe(network, spec), task), **extra}


def save_network(network: nn.Module, path: str | Path, task: str, spec: Spec | None = None, **extra: Any) -> Path:
    path = Path(path)
    with replacing(path, "wb") as handle:
        torch.save(network_checkpoint(network, task, spec, **extra), handle)
    return path


PATH_COLUMNS = ("t", "split", "loss", "accuracy")


def _number(value: float | None) -> str:
    """Finite numbers as repr; nan/inf spelled out so readers see them; None (no accuracy) empty."""
    if value is None:
        return ""
    return repr(float(value)) if math.isfinite(value) else str(float(value))


def extra_columns(rows: Sequence[Row]) -> list[str]:
    """The names of the rows' extras (measurements such as ``hessian_eig_1``), in order of first appearance."""
    return list(dict.fromkeys(name for row in rows for name in row.extras))


def write_path_csv(rows: Sequence[Row], path: str | Path) -> Path:
    """``t,split,loss,accuracy`` and one column per extra (empty where a row has none): one row per
    point and split; accuracy empty for regression."""
    path = Path(path)
    extras = extra_columns(rows)
    with replacing(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*PATH_COLUMNS, *extras])
        for row in rows:
            writer.writerow([repr(float(row.key)), row.split, _number(row.loss), _number(row.accuracy),
                             *(_number(row.extras.get(name)) for name in extras)])
    return path


def read_path_csv(path: str | Path) -> list[Row]:
    """The rows ``write_path_csv`` wrote, extras included."""
    with Path(path).open() as handle:
        return [
            Row(float(r["t"]), r["split"], float(r["loss"]), float(r["accuracy"]) if r["accuracy"] else None,
                {name: float(value) for name, value in r.items() if name not in PATH_COLUMNS and value})
            for r in csv.DictReader(handle)
        ]


def write_json(data: dict, path: str | Path) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")
