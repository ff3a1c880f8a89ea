"""Networks shared as safetensors, the format the Hugging Face Hub uses: tensors and a text header, no code.

``export`` writes ``weights.safetensors``: the network's state_dict, with its spec (JSON) and task in
the file's metadata. Every command and library call that takes a checkpoint takes this file too
(``io.read_checkpoint`` reads it as the checkpoint of its network), and opening it can run nothing:
its network is built only from a spec inside the trusted set, as for any checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save

from landscape_pl.api.inputs import NetworkLike, as_network
from landscape_pl.atomic import replacing
from landscape_pl.errors import LandscapeError
from landscape_pl.models.base import Spec, describe

FILE = "weights.safetensors"


def export(network: NetworkLike, folder: str | Path, task: str | None = None, spec: Spec | None = None) -> Path:
    """Write ``folder/weights.safetensors`` for a network or its checkpoint; returns the file.

    Args:
        network: a checkpoint path (endpoint, curve point, bead, aligned network, or a safetensors file)
            or an nn.Module (an EndpointModule gives its network).
        folder: where ``weights.safetensors`` goes.
        task: "classification" or "regression"; default: the checkpoint's, else classification.
        spec: ``{"class_path", "init_args"}`` for a plain nn.Module that records none (as for ``save_network``).
    """
    given = as_network(network, "network")
    try:
        described = given.spec or describe(given.module, spec)
    except ValueError as err:
        raise LandscapeError(f"{given.label}: {err}; or pass spec={{'class_path': ..., 'init_args': ...}}") from None
    state = given.module.state_dict()
    odd = [name for name, value in state.items() if not isinstance(value, torch.Tensor)]
    if odd:
        raise LandscapeError(f"{given.label} holds state that is not a tensor ({', '.join(odd[:3])}); safetensors stores tensors only")
    try:
        header = json.dumps(described)
    except TypeError as err:
        raise LandscapeError(f"{given.label}'s spec cannot be written as JSON ({err}): {described}") from None
    tensors = {name: value.detach().cpu().contiguous().clone() for name, value in state.items()}  # clone: no shared storage
    metadata = {"format": "pt", "spec": header, "task": task or given.task or "classification"}
    target = Path(folder) / FILE
    with replacing(target, "wb") as handle:
        handle.write(save(tensors, metadata))
    return target
