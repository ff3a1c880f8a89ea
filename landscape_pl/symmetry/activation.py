"""Activation alignment (algorithm 1 of the alignment paper): match units by cross-correlation.

Both networks see the same batches; hooks at each group's probes reduce the activations of a batch
to running sums (Σx, Σx², Σ x_a x_bᵀ per probe) as it passes, so memory is O(units²) per probe and
no activation is kept beyond its batch. Units are on the probe's ``dim`` (1 for conv channels and MLP
units, the last for a transformer's (batch, tokens, units)); every other position is a sample.

Groups without probes (an attention block's heads and each head's query/key and value dims, which
no module outputs) are weight matched with the probed groups held at their activation permutations:
exact for a permuted copy, and said so (``weight_matched``, the ``align`` report's list).

The paper aligns layers in order, each with the previous layer already permuted. Permuting layer
l-1 of network B does not change the values of layer l's units (the network computes the same
function), only which of B's units sits where in layer l-1; so every layer's cross-correlation can
be gathered in one pass and each assignment solved on its own, with the same result.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from landscape_pl.symmetry.spec import PermutationSpec, Probe
from landscape_pl.symmetry.weight_matching import assign, weight_match

# A unit whose variance is at most this fraction of its squared mean (std <= 0.1% of |mean|, or exactly 0)
# is constant ("dead"); with shifted sums a truly constant unit has variance exactly 0.
DEAD_TOLERANCE = 1e-6
# Batch elements whose activations give each unit's shift (see CrossStatistics).
SHIFT_SAMPLES = 8


@dataclass
class Correlation:
    """Cross-correlation of a group's units: ``matrix[i, j]`` between unit i of A and unit j of B.

    Dead (constant) units have a z-score of 0, hence zero rows/columns; their indices are listed.
    """

    matrix: torch.Tensor
    dead_a: list[int]
    dead_b: list[int]


class CrossStatistics:
    """Running sums of two activation streams ("a" and "b"), enough for their cross-correlation.

    Each stream is shifted by its mean on the first batch (the shifted-data algorithm): correlations do
    not change, float32 sums of nearly centred data lose far less precision, and a constant unit's
    shifted values are all equal, so its variance is at rounding level and it is found dead.
    """

    def __init__(self, units: int, device: torch.device) -> None:
        zeros = lambda *shape: torch.zeros(*shape, dtype=torch.float64, device=device)
        self.count = 0
        self.sum_a, self.sum_b, self.square_a, self.square_b = zeros(units), zeros(units), zeros(units), zeros(units)
        self.cross = zeros(units, units)
        self.shift: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}

    def rows(self, x: torch.Tensor, side: str, dim: int = 1) -> torch.Tensor:
        """(units + 1, samples): shifted units of ``x`` (on ``dim``), batch and positions as samples, and a row of ones.

        Few, row-wise operations: on a busy CPU each tensor operation costs a thread synchronization,
        and reductions along rows are much faster than along the columns of (samples, units).
        """
        x = x.movedim(dim, 1)  # a view: (batch, units, positions or tokens...)
        n = x.shape[1]
        view = x.reshape(x.shape[0], n, -1).transpose(0, 1)
        if side not in self.shift:
            self.shift[side] = view[:, :SHIFT_SAMPLES].float().mean((1, 2)).unsqueeze(1)
        rows = self.buffers.get(side)
        if rows is None or rows.shape[1:] != view.shape[1:]:  # the ones row is written once per shape
            rows = self.buffers[side] = x.new_empty(n + 1, *view.shape[1:], dtype=torch.float32)
            rows[n].fill_(1.0)
        torch.sub(view, self.shift[side].unsqueeze(1), out=rows[:n])
        return rows.reshape(n + 1, -1)

    def update(self, a: torch.Tensor, b: torch.Tensor) -> None:
        """Add a batch given by ``rows``: one matrix product gives the cross sums and both plain sums."""
        product = (a @ b.T).double()
        self.count += a.shape[1]
        self.cross += product[:-1, :-1]
        self.sum_a += product[:-1, -1]
        self.sum_b += product[-1, :-1]
        self.square_a += torch.linalg.vector_norm(a[:-1], dim=1).double() ** 2
        self.square_b += torch.linalg.vector_norm(b[:-1], dim=1).double() ** 2

    def correlation(self) -> Correlation:
        n = self.count
        mean_a, mean_b = self.sum_a / n, self.sum_b / n
        var_a = (self.square_a / n - mean_a**2).clamp_min(0)
        var_b = (self.square_b / n - mean_b**2).clamp_min(0)
        dead_a = var_a <= DEAD_TOLERANCE * (mean_a + self.shift["a"].flatten().double()) ** 2
        dead_b = var_b <= DEAD_TOLERANCE * (mean_b + self.shift["b"].flatten().double()) ** 2
        inv_a = torch.where(dead_a, 0.0, var_a.rsqrt())
        inv_b = torch.where(dead_b, 0.0, var_b.rsqrt())
        covariance = self.cross / n - torch.outer(mean_a, mean_b)
        matrix = (covariance * torch.outer(inv_a, inv_b)).clamp(-1, 1).cpu()
        return Correlation(matrix, dead_a.nonzero().flatten().tolist(), dead_b.nonzero().flatten().tolist())


def hook(module: nn.Module, probe: Probe, callback) -> torch.utils.hooks.RemovableHandle:
    if probe.input:
        return module.register_forward_pre_hook(lambda _m, args: callback(args[0]))
    return module.register_forward_hook(lambda _m, _args, output: callback(output))


@torch.no_grad()
def cross_correlations(
    net_a: nn.Module, net_b: nn.Module, spec: PermutationSpec, batches: Iterable, progress: bool = False
) -> dict[str, Correlation]:
    """Per group with probes, the cross-correlation of A's and B's units on ``batches`` (streams: mean over
    probes). Groups without probes (an attention block's heads and head dims) are left out."""
    modules_a, modules_b = dict(net_a.named_modules()), dict(net_b.named_modules())
    device = next(net_a.parameters()).device
    stats = {(g.name, probe): CrossStatistics(g.size, device) for g in spec.groups for probe in g.probes}
    if not stats:  # nothing to read: no pass over the data
        return {}
    held: dict[tuple[str, Probe], torch.Tensor] = {}
    handles = []

    def keep(key: tuple[str, Probe]):
        def callback(x: torch.Tensor) -> None:
            held[key] = stats[key].rows(x, "a", key[1].dim)
        return callback

    def reduce(key: tuple[str, Probe]):
        def callback(x: torch.Tensor) -> None:
            stats[key].update(held.pop(key), stats[key].rows(x, "b", key[1].dim))
        return callback

    for group, probe in stats:
        handles.append(hook(modules_a[probe.module], probe, keep((group, probe))))
        handles.append(hook(modules_b[probe.module], probe, reduce((group, probe))))
    modes = net_a.training, net_b.training
    net_a.eval(), net_b.eval()
    try:
        for x, *_ in tqdm(batches, desc="activations", disable=not progress, leave=False):
            x = x.to(device)
            net_a(x)
            net_b(x)
    finally:
        for handle in handles:
            handle.remove()
        net_a.train(modes[0]), net_b.train(modes[1])
    result = {}
    for group in (g for g in spec.groups if g.probes):
        parts = [stats[(group.name, probe)].correlation() for probe in group.probes]
        result[group.name] = Correlation(
            torch.stack([p.matrix for p in parts]).mean(0),
            sorted({i for p in parts for i in p.dead_a}),
            sorted({i for p in parts for i in p.dead_b}),
        )
    return result


def listed(indices: list[int], most: int = 10) -> str:
    """Indices for a message: all of them, or the first ``most`` and how many more."""
    shown = str(indices[:most])
    return shown if len(indices) <= most else f"{shown[:-1]}, ... ({len(indices)} in all)]"


def align_activations(
    net_a: nn.Module, net_b: nn.Module, spec: PermutationSpec, batches: Iterable, progress: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, Correlation]]:
    """Permutations of B's units that maximize the correlation with A's, and the correlations (of unpermuted B).

    Groups without probes have no activations to correlate: an attention block's heads and each head's
    query/key and value dims (computed inside the block, never a module's output). They are weight
    matched (``weight_match`` over the parameters, heads jointly with their dims), with every group
    that has probes held at its activation permutation; they are the groups missing from the
    correlations, and ``weight_matched(spec)`` lists them.
    """
    correlations = cross_correlations(net_a, net_b, spec, batches, progress)
    for name, corr in correlations.items():
        if corr.dead_a or corr.dead_b:
            warnings.warn(
                f"group {name}: constant activations on the alignment data for units {listed(corr.dead_a)} of the first "
                f"network and {listed(corr.dead_b)} of the second; their correlation is taken as 0", stacklevel=2
            )
    perms = match_unprobed(net_a, net_b, spec, {name: assign(corr.matrix) for name, corr in correlations.items()})
    return {name: perms[name] for name in spec.names}, correlations


def match_unprobed(target: nn.Module, network: nn.Module, spec: PermutationSpec, perms: dict[str, torch.Tensor]
                   ) -> dict[str, torch.Tensor]:
    """``perms`` with the groups that have no probes (attention heads) weight matched to ``target``, the rest held."""
    rest = weight_matched(spec)
    if not rest:
        return perms
    params = [n for n, _ in network.named_parameters()]
    return perms | weight_match(target.state_dict(), network.state_dict(), spec, params, start=perms, only=rest).permutations


def weight_matched(spec: PermutationSpec) -> list[str]:
    """The groups ``align_activations`` weight-matches: those without probes."""
    return [g.name for g in spec.groups if not g.probes]
