"""Aligning N networks of one architecture at once: to one of them, or each to all the others.

``to_reference`` permutes every network onto one network's unit order (pairwise alignment, N - 1 times).
``to_each_other`` is Git Re-Basin's multi-model matching (MergeMany): starting from the alignment to
network 0, each network in turn is re-aligned to the others as they stand, round after round, until a
round changes nothing. Each step maximizes the sum over all pairs of networks of what pairwise
alignment maximizes, over one network's permutations with the rest held, and accepts only a gain, so
the rounds climb one objective and end:

- weight matching: Σ_pairs <P_i θ_i, P_j θ_j>; network i's step is weight matching to the mean of the
  others (aligned), started from its current permutations;
- activation matching: Σ_pairs of the correlations of corresponding units; network i's step is one
  assignment per group on the mean of its correlation matrices with each other network (aligned).
  The activations of the *averaged* network are no target: in a deep network they are what averaging
  collapses. The pairwise correlations are computed once (N (N - 1) / 2 passes); the rounds only
  re-solve assignments. Groups without probes (attention heads) are weight matched to the mean of the
  others afterwards, the probed groups held, as ``align_activations`` does for a pair.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from landscape_pl.errors import LandscapeError
from landscape_pl.symmetry.activation import Correlation, assign, cross_correlations, match_unprobed
from landscape_pl.symmetry.apply import identity, permute_network
from landscape_pl.symmetry.pair import find_permutation
from landscape_pl.symmetry.spec import PermutationSpec
from landscape_pl.symmetry.weight_matching import TOLERANCE, weight_match

Permutations = dict[str, torch.Tensor]


@dataclass
class Alignment:
    """Each network's permutations onto the common unit order, the rounds run and whether the last changed nothing."""

    permutations: list[Permutations]
    rounds: int
    converged: bool


def to_reference(networks: Sequence[nn.Module], spec: PermutationSpec, method: str, batches: Iterable | None,
                 reference: int, progress: bool = False) -> Alignment:
    """Every network aligned to ``networks[reference]`` (whose permutations are the identity)."""
    perms = [identity(spec) if i == reference else find_permutation(networks[reference], net, method, batches, spec, progress)
             for i, net in enumerate(networks)]
    return Alignment(perms, 0, True)


def average(networks: Sequence[nn.Module]) -> nn.Module:
    """A copy of the first network holding the uniform mean of all floating-point state (counters kept from the first)."""
    merged = copy.deepcopy(networks[0])
    states = [n.state_dict() for n in networks]
    merged.load_state_dict({name: torch.stack([s[name] for s in states]).mean(0) if torch.is_floating_point(value) else value
                            for name, value in states[0].items()})
    return merged


def others(networks: Sequence[nn.Module], spec: PermutationSpec, perms: Sequence[Permutations], i: int) -> nn.Module:
    """The mean of every network but ``i``, each in the common unit order."""
    return average([permute_network(net, spec, perms[j]) for j, net in enumerate(networks) if j != i])


def to_each_other(networks: Sequence[nn.Module], spec: PermutationSpec, method: str, batches: Iterable | None,
                  rounds: int = 10, progress: bool = False) -> Alignment:
    """Multi-model matching (see the module docstring), at most ``rounds`` rounds."""
    if method == "weight":
        step, perms = weight_step(networks, spec), to_reference(networks, spec, method, None, 0, progress).permutations
    elif method == "activation":
        if batches is None:
            raise LandscapeError("activation alignment needs data: pass batches (the CLI takes --data)")
        step, perms = activation_step(networks, spec, batches, progress)
    else:
        raise LandscapeError(f"method must be 'activation' or 'weight', got {method!r}")
    for round_ in range(1, rounds + 1):
        changed = [step(perms, i) for i in range(len(networks))]
        if not any(changed):
            return Alignment(finish(networks, spec, perms, method), round_, True)
    return Alignment(finish(networks, spec, perms, method), rounds, False)


def weight_step(networks: Sequence[nn.Module], spec: PermutationSpec):
    """Network i's step: weight matching to the mean of the others, from its current permutations."""
    params = [name for name, _ in networks[0].named_parameters()]

    def step(perms: list[Permutations], i: int) -> bool:
        target = others(networks, spec, perms, i).state_dict()
        found = weight_match(target, networks[i].state_dict(), spec, params, start=perms[i]).permutations
        changed = any(not torch.equal(found[name], perms[i][name]) for name in found)
        perms[i] = found
        return changed

    return step


def activation_step(networks: Sequence[nn.Module], spec: PermutationSpec, batches: Iterable, progress: bool):
    """The pairwise correlations, the alignment to network 0 they give, and network i's step on them."""
    count = len(networks)
    pairs = {(i, j): cross_correlations(networks[i], networks[j], spec, batches, progress)
             for i in range(count) for j in range(i + 1, count)}
    probed = list(pairs[(0, 1)])

    def matrix(j: int, i: int, group: str) -> torch.Tensor:
        """Correlations of network j's units (rows) with network i's (columns)."""
        found: Correlation = pairs[(j, i)][group] if j < i else pairs[(i, j)][group]
        return found.matrix if j < i else found.matrix.T

    perms = [identity(spec)]
    for i in range(1, count):  # the alignment to network 0, as align_activations finds it
        perms.append(match_unprobed(networks[0], networks[i], spec, {**identity(spec), **{g: assign(matrix(0, i, g)) for g in probed}}))

    def step(perms: list[Permutations], i: int) -> bool:
        changed = False
        for group in probed:
            mean = torch.stack([matrix(j, i, group)[perms[j][group]] for j in range(count) if j != i]).mean(0)
            found, rows = assign(mean), torch.arange(len(mean))
            gain = mean[rows, found].double().sum() - mean[rows, perms[i][group]].double().sum()
            if gain > TOLERANCE * mean.abs().amax(1).double().sum():
                perms[i][group], changed = found, True
        return changed

    return step, perms


def finish(networks: Sequence[nn.Module], spec: PermutationSpec, perms: list[Permutations], method: str) -> list[Permutations]:
    """After activation rounds, the groups without probes weight matched to the mean of the others, probed groups held."""
    if method == "activation":
        for i, net in enumerate(networks):
            perms[i] = match_unprobed(others(networks, spec, perms, i), net, spec, perms[i])
    return [{name: p.cpu() for name, p in found.items()} for found in perms]
