"""Checking a permutation spec by construction: a permuted copy must compute the same function.

The network runs in eval mode on a float64 copy of its state, perturbed where values may be equal (so that,
e.g., a fresh BatchNorm's unit variances cannot hide an entry the spec forgot), and permuted by
random permutations of every group; its outputs on the example must equal the unpermuted copy's to
1e-6 relative. When they do not, each group is tried alone to name the one that breaks the function.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from landscape_pl.errors import LandscapeError
from landscape_pl.symmetry.apply import permute, random_permutations
from landscape_pl.symmetry.spec import PermutationSpec

TOLERANCE = 1e-6


def tensors(output: Any) -> Iterator[torch.Tensor]:
    """Every tensor in a network's output (a tensor, or tuples/lists/dicts of them)."""
    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, dict):
        for value in output.values():
            yield from tensors(value)
    elif isinstance(output, (tuple, list)):
        for value in output:
            yield from tensors(value)


def needs_noise(value: torch.Tensor) -> bool:
    """Vectors (biases, norms, statistics) and constant tensors (zero-initialized layers): equal values could hide
    an entry the spec forgot. Other weights are already distinct per unit; not drawing noise for them keeps the
    check cheap on large networks (it is most of its cost otherwise)."""
    return value.dim() <= 1 or bool(value.amin() == value.amax())


def perturbed(network: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """The network's state in float64, vectors and constant entries perturbed (the network itself is not touched)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, tuple[int, ...]]] = set()
    for name, value in network.state_dict().items():
        key = (value.data_ptr(), tuple(value.shape))
        if value.numel() and key in seen:  # a tied tensor's second name: functional_call ties it to the first
            continue
        seen.add(key)
        if value.is_floating_point() and value.numel():
            noisy = needs_noise(value)
            value = value.double()
            if not noisy:
                state[name] = value
                continue
            noise = torch.rand(value.shape, generator=generator, dtype=torch.float64).to(value.device)
            if name.endswith("running_var"):
                value = value * (0.75 + 0.5 * noise)
            else:
                value = value + 0.1 * (noise - 0.5) * (value.std().nan_to_num() + 0.1)
        state[name] = value
    return state


def outputs(network: nn.Module, state: dict[str, torch.Tensor], example: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        result = torch.func.functional_call(network, state, (example,))
    return torch.cat([t.double().flatten() for t in tensors(result)])


def relative_change(reference: torch.Tensor, other: torch.Tensor) -> float:
    return float((other - reference).norm() / reference.norm().clamp_min(1e-300))


def check_spec(network: nn.Module, spec: PermutationSpec, example: torch.Tensor, seed: int = 0) -> float:
    """The relative output change under random permutations of every group (<= 1e-6), or raise naming the group."""
    state = perturbed(network, seed)
    training = network.training
    network.eval()
    try:
        return compare(network, spec, state, example, seed)
    finally:
        network.train(training)


def compare(network: nn.Module, spec: PermutationSpec, state: dict[str, torch.Tensor], example: torch.Tensor, seed: int) -> float:
    device = next(iter(state.values())).device if state else torch.device("cpu")
    example = (example.double() if example.is_floating_point() else example).to(device)
    reference = outputs(network, state, example)
    perms = random_permutations(spec, seed)
    change = relative_change(reference, outputs(network, permute(state, spec, perms), example))
    if change <= TOLERANCE:
        return change
    for group in spec.groups:
        alone = relative_change(reference, outputs(network, permute(state, spec, {group.name: perms[group.name]}), example))
        if alone > TOLERANCE:
            raise LandscapeError(
                f"the permutation spec of {type(network).__name__} is wrong: permuting group {group.name!r} alone "
                f"changes the outputs by {alone:.2e} (relative; at most {TOLERANCE:g} allowed); its axes: "
                f"{[(a.entry, a.dim) for a in group.axes]}"
            )
    raise LandscapeError(
        f"the permutation spec of {type(network).__name__} is wrong: permuting all its groups together changes the "
        f"outputs by {change:.2e} (relative), though no single group does"
    )
