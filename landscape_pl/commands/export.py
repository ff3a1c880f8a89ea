"""``export``: a network as ``weights.safetensors``, the Hugging Face Hub's format, to share it safely.

The file holds the network's tensors with its spec and task in the metadata; ``interpolate``,
``validate --ckpt_path`` and every other command that takes a checkpoint take it as well.
"""

from __future__ import annotations

from landscape_pl.api.export import export as export_network


def export(ckpt: str, out: str) -> str:
    """Write ``out/weights.safetensors`` (the state_dict; the spec as JSON and the task in its metadata).

    Args:
        ckpt: a network checkpoint: an endpoint, a curve point, a bead or an aligned network.
        out: folder for weights.safetensors.
    """
    path = export_network(ckpt, out)
    print(f"wrote {path}")
    return str(path)
