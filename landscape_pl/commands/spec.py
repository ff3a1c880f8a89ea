"""``spec``: print a checkpoint's permutation groups and the result of checking them by construction."""

from __future__ import annotations

from landscape_pl.io import load_network
from landscape_pl.symmetry import check_spec, spec_of
from landscape_pl.symmetry.trace import example_input


def spec(ckpt: str) -> dict:
    """Print each permutation group (name, size, the entries and axes it touches) and the construction check.

    Args:
        ckpt: a checkpoint (or weights.safetensors) of the network.
    """
    network = load_network(ckpt).network
    groups = spec_of(network)  # derived or declared, and already checked: a wrong spec raises, naming its group
    for group in groups.groups:
        axes = ", ".join(f"{a.entry}[{a.dim}]" + (f" x{a.block}" if a.block > 1 else "") + (f" @{a.offset}" if a.offset else "")
                         for a in group.axes)
        print(f"{group.name} ({group.size} units): {axes}")
    change = check_spec(network, groups, example_input(network))
    print(f"check passed: {len(groups.groups)} groups permuted at random change the outputs by {change:.1e} (relative, <= 1e-6)")
    return {"groups": [{"name": g.name, "size": g.size, "axes": [[a.entry, a.dim] for a in g.axes]} for g in groups.groups], "change": change}
