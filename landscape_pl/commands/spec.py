"""``spec``: print a checkpoint's permutation groups and the result of checking them by construction."""

from __future__ import annotations

import torch

from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.io import load_network
from landscape_pl.symmetry.derive import checked_spec


def spec(ckpt: str, data: LandscapeDataModule | None = None) -> dict:
    """Print each permutation group (name, size, the entries and axes it touches) and the construction check.

    Each axis prints as ``entry[dim]``, with ``xB`` when every unit owns B consecutive entries (a
    flattened feature map, an attention head) and ``@O`` when the units are a slice starting at O.

    Args:
        ckpt: a checkpoint (or weights.safetensors) of the network.
        data: a data module whose first training examples are the check's input; default: an input
            guessed from the network's first layer.
    """
    network = load_network(ckpt).network
    example = None if data is None else torch.stack([data.split("train")[i][0] for i in range(2)])
    checked = checked_spec(network, example)  # a wrong or underivable spec raises, naming its group or graph node
    for group in checked.spec.groups:
        axes = ", ".join(f"{a.entry}[{a.dim}]" + (f" x{a.block}" if a.block > 1 else "") + (f" @{a.offset}" if a.offset else "")
                         for a in group.axes)
        print(f"{group.name} ({group.size} units): {axes}")
    print(f"{checked.source} spec, check passed: {len(checked.spec.groups)} groups permuted at random change the outputs "
          f"by {checked.change:.1e} (relative, at most 1e-6 allowed)")
    return {"source": checked.source, "change": checked.change,
            "groups": [{"name": g.name, "size": g.size, "axes": [[a.entry, a.dim, a.block, a.offset] for a in g.axes]}
                       for g in checked.spec.groups]}
