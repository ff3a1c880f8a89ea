"""REPAIR (Jordan et al. 2023): each hidden unit of a point between networks given the mean and the
standard deviation that the networks it mixes have, undoing the variance collapse of interpolation.

Where a unit is measured and corrected (a ``Site``): the output of the Linear/Conv that opens its
permutation group (the module whose ``weight`` dim 0 is one of the group's axes), i.e. the
pre-activation. If that output goes straight into a normalization with a per-channel affine (a
BatchNorm; a GroupNorm; a LayerNorm over the units' last dim), the unit is measured at the norm's
output instead and the correction folds into its weight and bias: a norm divides a correction made
before it away, so its output is the last place before the nonlinearity where one lasts. In eval
mode with the point's own statistics (RESET) a BatchNorm output has mean β(t) and std |γ(t)|, so what
REPAIR then fixes is exactly what RESET leaves (|γ(t)| against the mixture of |γ_k|). Without a norm
the correction y -> a y + b folds into the layer's weight rows and bias. Either way a repaired point
is an ordinary network (its checkpoint needs no REPAIR to load). Where the module folded into has no
bias (``bias=False``), only the scale can be written: the std is corrected and the mean is left, with
a warning naming the group.

Targets: a point made of networks k with weights w_k (``Path.mixture``: (1 - t, t) on a line or a
curve's ends, barycentric on a plane) gets mean Σ w_k μ_k and std Σ w_k σ_k per unit.

One statistics pass per point: sites are measured in forward order during one pass over the data,
and each batch's output is corrected in flight to the same mixture of the networks' statistics *on
that batch*, so every later site is measured in the repaired network (as REPAIR's own reset layers
do), and a point that is one of the networks is left exactly as it is. The fold uses the moments
over all batches (float64 merges of per-batch moments); on a single batch it is exact. With several
batches the per-batch corrections upstream differ a little from the folded ones (7e-4 to 5e-3 of a
std on 5 batches); ``exact=True`` measures and folds one site at a time instead, each pass cut at its
site, so every unit has the target statistics over all batches (K sites: about K / 2 passes' compute).

Units with zero variance in one of the networks (dead) are left uncorrected at every point, with a
warning naming their group; a unit with zero variance at the point itself is left as it is there.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from landscape_pl.errors import LandscapeError
from landscape_pl.paths.anchors import NetworkSlots

if TYPE_CHECKING:
    from landscape_pl.paths.fixups import RecomputeBatchNorm
    from landscape_pl.paths.path import Path
    from landscape_pl.symmetry.spec import PermutationSpec

OPENERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
AFFINE_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)  # per-channel affine after a normalization
DEAD = 1e-6  # a std at most this (relative to 1 + |mean|) is zero variance: never divided by


class RepairWarning(UserWarning):
    """Units REPAIR leaves uncorrected (zero variance in a network it mixes)."""


@dataclass(frozen=True)
class Site:
    """Where one opening layer's units are measured and corrected.

    ``layer``: the Linear/Conv opening ``group``; ``norm``: the normalization its output goes into (the
    correction folds there; measured at its output), else None; ``channels``: the output channels that
    are the group's units; ``dim``: the channel axis of the measured output (last for Linear, 1 else);
    ``shift``: whether the module folded into has a bias (else only the std is corrected).
    """

    group: str
    layer: str
    norm: str | None
    channels: slice
    dim: int
    shift: bool = True

    @property
    def measured(self) -> str:
        return self.norm or self.layer


@dataclass
class Moments:
    """Per channel of a site: mean and population std over every sample (and position) measured, and
    each batch's own, in the order the batches came."""

    mean: torch.Tensor
    std: torch.Tensor
    batch_mean: list[torch.Tensor]
    batch_std: list[torch.Tensor]


def repair_spec(network: nn.Module) -> PermutationSpec:
    """The network's permutation spec; REPAIR without one is refused, saying how to give one."""
    from landscape_pl.symmetry.derive import spec_of

    try:
        spec = spec_of(network)
    except LandscapeError as err:
        raise LandscapeError(f"REPAIR corrects the units of each permutation group, so it needs a permutation spec of "
                             f"{type(network).__name__}: {err}; or evaluate without REPAIR") from None
    if not spec.groups:
        raise LandscapeError(f"REPAIR: {type(network).__name__} has no hidden units to correct (its permutation spec is empty)")
    return spec


def find_sites(network: nn.Module, example: torch.Tensor, spec: PermutationSpec | None = None) -> list[Site]:
    """Every opening layer of every group, with the BatchNorm its output feeds (found by one forward of
    ``example``: the BatchNorm whose input is that layer's output tensor), in forward order."""
    spec = spec or repair_spec(network)
    modules = dict(network.named_modules())
    openers = []
    for group in spec.groups:
        for axis in group.axes:
            name = axis.entry.removesuffix(".weight")
            if axis.dim == 0 and axis.entry.endswith(".weight") and isinstance(modules.get(name), OPENERS):
                openers.append((group, name, axis.span(group.size)))
    if not openers:
        raise LandscapeError(f"REPAIR: no Linear/Conv opens a permutation group of {type(network).__name__}; "
                             f"groups: {list(spec.names)}")
    openers = outermost(openers)
    outputs: dict[int, tuple[str, torch.Tensor]] = {}  # the tensor is held: a freed tensor's id is reused by later ones
    feeds: dict[str, str] = {}
    order: list[str] = []

    def opened(name: str, output: torch.Tensor) -> None:
        outputs[id(output)] = name, output
        order.append(name)

    handles = [modules[name].register_forward_hook(lambda m, i, o, name=name: opened(name, o)) for _, name, _ in openers]

    def fed(name: str, given: torch.Tensor) -> None:
        opener, output = outputs.get(id(given), ("", None))
        if output is given:
            feeds[opener] = name

    handles += [m.register_forward_pre_hook(lambda m, i, name=name: fed(name, i[0]))
                for name, m in modules.items() if isinstance(m, AFFINE_NORMS)]
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            network(example[:8])  # which tensor feeds which module: a few samples show it
    finally:
        for handle in handles:
            handle.remove()
        network.train(was_training)
    sites = []
    for group, name, channels in openers:
        dim = -1 if isinstance(modules[name], nn.Linear) else 1
        norm = feeds.get(name)
        if norm is not None and not per_channel(modules[norm], dim):
            norm = None  # a LayerNorm over more than the units: no per-unit affine to fold into; measured at the layer
        if norm is not None and modules[norm].weight is None:
            raise LandscapeError(f"REPAIR folds group {group.name!r}'s correction into {norm}, a {type(modules[norm]).__name__} "
                                 "without weight and bias (affine=False): build it with affine=True, or evaluate without REPAIR")
        target = norm or name
        if modules[target].bias is None:
            warnings.warn(f"REPAIR: group {group.name!r} is corrected through {target}, which has no bias: its units' std is "
                          "corrected and their mean is left as it is (build it with bias=True for the full correction)",
                          RepairWarning, stacklevel=3)
        sites.append(Site(group.name, name, norm, channels, dim, modules[target].bias is not None))
    rank = {name: k for k, name in enumerate(dict.fromkeys(order))}
    return sorted(sites, key=lambda s: rank.get(s.layer, len(rank)))


def outermost(openers: list[tuple]) -> list[tuple]:
    """Openers without those whose channels lie inside another group's on the same layer (a group nested
    in another's units: a GroupNorm's channels within its groups, a head's dims within the heads): the
    correction is per channel, so each channel is corrected once, as a unit of the outer group."""
    def inside(inner: tuple, outer: tuple) -> bool:  # spans are explicit slices (Axis.span)
        return inner[1] == outer[1] and outer[2].start <= inner[2].start and inner[2].stop <= outer[2].stop

    kept: list[tuple] = []
    for opener in sorted(openers, key=lambda o: o[2].start - o[2].stop):  # widest first
        if not any(inside(opener, k) for k in kept):
            kept.append(opener)
    return [o for o in openers if o in kept]


def per_channel(norm: nn.Module, dim: int) -> bool:
    """Whether ``norm``'s affine acts per channel of axis ``dim`` (a LayerNorm only over the last dim)."""
    return not isinstance(norm, nn.LayerNorm) or (len(norm.normalized_shape) == 1 and dim == -1)


def zero_variance(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Channels with zero variance (never divided by)."""
    return std <= DEAD * (1 + mean.abs())


def dead(moments: Moments) -> torch.Tensor:
    return zero_variance(moments.mean, moments.std)


def affine(mean: torch.Tensor, std: torch.Tensor, target_mean: torch.Tensor, target_std: torch.Tensor,
           correct: torch.Tensor, shift: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel (scale a, shift b) taking (mean, std) to the target: a = σ*/σ, b = μ* - a μ (b = 0 without
    ``shift``); (1, 0) where not ``correct`` or the channel has zero variance. One formula for the in-flight
    and the folded correction."""
    ok = correct & ~zero_variance(mean, std)
    scale = torch.where(ok, target_std / std.clamp_min(1e-30), 1.0)
    return scale, torch.where(ok & shift, target_mean - scale * mean, 0.0)


Targets = Callable[[int, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class Measured(Exception):
    """Raised at the last site to end a forward early: nothing after it is needed."""


@torch.no_grad()
def measure(network: nn.Module, sites: Sequence[Site], data: Iterable, batches: int | None = None,
            targets: Targets | None = None, stop: bool = False) -> list[Moments]:
    """One pass over ``data`` (``batches`` of it; None: all) in eval mode: each site's moments.

    With ``targets(batch, site) -> (mean, std, correct)`` every batch's output at a site is corrected
    in flight, on the channels ``correct``, to that mean and std (from its own batch mean and std), so
    the sites after it are measured in the repaired network; the moments returned are the uncorrected
    ones, which the correction is computed from. ``stop`` ends each forward at the last site.
    """
    modules = dict(network.named_modules())
    sums = [[0, 0.0, 0.0] for _ in sites]  # count, mean, M2 (float64 merges)
    per_batch: list[tuple[list, list]] = [([], []) for _ in sites]
    batch = [0]

    def hook(index: int, site: Site, output: torch.Tensor) -> None:
        dim = site.dim % output.dim()
        start = site.channels.start or 0
        view = output.narrow(dim, start, (site.channels.stop or output.shape[dim]) - start)  # no copy
        reduce = [d for d in range(output.dim()) if d != dim]
        var, mean = torch.var_mean(view, dim=reduce, unbiased=False)
        std = var.sqrt()
        per_batch[index][0].append(mean)
        per_batch[index][1].append(std)
        count, total_mean, m2 = sums[index]
        n = view.numel() // view.shape[dim]
        delta = mean.double() - total_mean
        sums[index] = [count + n, total_mean + delta * (n / (count + n)), m2 + var.double() * n + delta ** 2 * (count * n / (count + n))]
        if targets is not None:
            scale, shift = affine(mean, std, *targets(batch[0], index), site.shift)
            shape = [-1 if d == dim else 1 for d in range(output.dim())]
            view.mul_(scale.view(shape)).add_(shift.view(shape))
        if stop and index == len(sites) - 1:
            raise Measured

    handles = [modules[s.measured].register_forward_hook(lambda m, i, o, k=k, s=s: hook(k, s, o)) for k, s in enumerate(sites)]
    was_training = network.training
    network.eval()
    device = next(network.parameters()).device
    try:
        for x, *_ in islice(data, batches):
            try:
                network(x.to(device, non_blocking=True))
            except Measured:
                pass
            batch[0] += 1
    finally:
        for handle in handles:
            handle.remove()
        network.train(was_training)
    if batch[0] == 0:
        raise LandscapeError("REPAIR: the data for its statistics is empty")
    return [Moments(mean.float(), (m2 / count).sqrt().float(), means, stds)
            for (count, mean, m2), (means, stds) in zip(sums, per_batch)]


def mix(values: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """Σ_k w_k values[k]."""
    return sum(w * v for v, w in zip(values, weights) if w != 0) if any(weights) else torch.zeros_like(values[0])


@torch.no_grad()
def fold(network: nn.Module, site: Site, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """y -> scale y + shift on the site's channels, written into the norm's affine or the layer itself
    (shift is 0 where it has no bias)."""
    module = dict(network.named_modules())[site.measured]
    weight, bias = module.weight, module.bias
    rows = weight[site.channels]
    rows.mul_(scale.to(weight).view(-1, *[1] * (rows.dim() - 1)))
    if bias is not None:
        bias[site.channels] = scale.to(bias) * bias[site.channels] + shift.to(bias)


@dataclass
class Statistics:
    """Every site's moments in each network a point mixes, and the channels to correct (alive in all)."""

    sites: list[Site]
    networks: list[list[Moments]]
    correct: list[torch.Tensor]

    def target(self, index: int, weights: Sequence[float], batch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixture's (mean, std) at site ``index``: over all data, or on one batch."""
        if batch is None:
            return (mix([n[index].mean for n in self.networks], weights), mix([n[index].std for n in self.networks], weights))
        return (mix([n[index].batch_mean[batch] for n in self.networks], weights),
                mix([n[index].batch_std[batch] for n in self.networks], weights))

    def correction(self, index: int, point: Moments, weights: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """The affine map taking the point's moments over all batches at site ``index`` to the mixture (what
        ``fold`` writes)."""
        return affine(point.mean, point.std, *self.target(index, weights), self.correct[index], self.sites[index].shift)


def network_statistics(sites: list[Site], measured: Sequence[list[Moments]], labels: Sequence[str]) -> Statistics:
    """The networks' moments (one ``measure`` each) as Statistics, with a warning per group with dead units."""
    lengths = {len(m[0].batch_mean) for m in measured}
    if len(lengths) != 1:
        raise LandscapeError(f"REPAIR: the networks were measured on different numbers of batches {sorted(lengths)}")
    correct = []
    for index, site in enumerate(sites):
        alive = torch.ones_like(measured[0][index].mean, dtype=torch.bool)
        for label, moments in zip(labels, measured):
            zero = dead(moments[index])
            if bool(zero.any()):
                units = (zero.nonzero().flatten() + (site.channels.start or 0)).tolist()
                warnings.warn(f"REPAIR: group {site.group!r} ({site.measured}) has {len(units)} unit(s) with zero variance in "
                              f"{label} (units {units[:8]}{' ...' if len(units) > 8 else ''}): they are left uncorrected "
                              "at every point", RepairWarning, stacklevel=3)
            alive &= ~zero
        correct.append(alive)
    return Statistics(sites, list(measured), correct)


@torch.no_grad()
def repair_point(network: nn.Module, statistics: Statistics, weights: Sequence[float], data: Iterable,
                 batches: int | None = None, exact: bool = False) -> list[Moments]:
    """Correct ``network`` in place so each unit has the mixture ``weights`` of the networks' mean and
    std: one statistics pass (corrected in flight), then the fold; ``exact``: each site measured (a pass
    stopped there) and folded in turn. Returns the point's uncorrected moments."""
    if len(weights) != len(statistics.networks):
        raise LandscapeError(f"REPAIR: {len(weights)} mixture weights for {len(statistics.networks)} networks")
    count = len(statistics.networks[0][0].batch_mean)

    def more_batches() -> LandscapeError:
        return LandscapeError(f"REPAIR: the data gave more batches than the {count} the networks were measured on; "
                              "its statistics need the same deterministic batches at every point")

    if exact:
        point = []
        for index, site in enumerate(statistics.sites):
            (moments,) = measure(network, [site], data, batches, stop=True)
            if len(moments.batch_mean) > count:
                raise more_batches()
            fold(network, site, *statistics.correction(index, moments, weights))
            point.append(moments)
        return point

    def targets(batch: int, index: int):
        if batch >= count:
            raise more_batches()
        return (*statistics.target(index, weights, batch), statistics.correct[index])

    point = measure(network, statistics.sites, data, batches, targets)
    for index, site in enumerate(statistics.sites):
        fold(network, site, *statistics.correction(index, point[index], weights))
    return point


def first_input(data: Iterable, device: torch.device) -> torch.Tensor:
    for x, *_ in data:
        return x.to(device)
    raise LandscapeError("REPAIR: the data for its statistics is empty")


class Repair:
    """The REPAIR fix-up: at each point, units corrected to the mixture of the networks' statistics.

    Two ways to name the networks:
    - along a path (``endpoints`` None): the path's trained networks (``Path.networks``), measured once
      per walk in ``prepare``; at each point the weights are ``path.mixture(key)`` (a line's or a
      curve's t: (1 - t, t); a plane's coordinates: barycentric);
    - given (``endpoints=[(network, weight), ...]``): N networks with fixed mixture weights, e.g. a merge
      of N networks gets mean Σ w_k μ_k; ``apply(network, key)`` ignores ``key``.

    ``data``: the batches statistics are measured on (deterministic: the same batches at every pass; the
    training split's ``eval_dataloader``), ``batches`` of them (None: all). ``reset``: the BatchNorm
    recomputation that runs before REPAIR at each point, run on each network before it is measured too,
    so a point that is one of the networks is measured as that network. ``exact``: one pass per site
    instead of one per point, for statistics exact over several batches (module docstring).
    """

    def __init__(self, data: Iterable, batches: int | None = None, endpoints: Sequence[tuple[nn.Module, float]] | None = None,
                 reset: RecomputeBatchNorm | None = None, exact: bool = False) -> None:
        self.data, self.batches, self.reset, self.exact = data, batches, reset, exact
        self.endpoints = list(endpoints) if endpoints is not None else None
        self.path: Path | None = None
        self.statistics: Statistics | None = None

    def prepare(self, network: nn.Module, path: Path | None = None) -> None:
        """Measure every network the points mix, once: the given ones (copies), or the path's, each
        written into ``network`` in turn (the walk writes each point over it afterwards)."""
        device = next(network.parameters()).device
        sites = find_sites(network, first_input(self.data, device))
        measured, labels = [], []
        if self.endpoints is not None:
            for k, (given, _) in enumerate(self.endpoints):
                measured.append(self.measured(copy.deepcopy(given).to(device), sites))
                labels.append(f"network {k}")
        elif path is not None:
            slots = NetworkSlots(network, path.anchors.names)
            for k in path.networks:
                slots.write(path.anchors.matrix[k])
                measured.append(self.measured(network, sites))
                labels.append(f"the path's network {k} (anchor {k})")
        else:
            raise LandscapeError("REPAIR needs the networks a point is made of: walk a path (line, curve, plane), or give "
                                 "Repair(endpoints=[(network, weight), ...])")
        self.path = path
        self.statistics = network_statistics(sites, measured, labels)

    def measured(self, network: nn.Module, sites: list[Site]) -> list[Moments]:
        """One network's moments, after the BatchNorm recomputation that precedes REPAIR at every point."""
        if self.reset is not None:
            self.reset.apply(network, None)
        return measure(network, sites, self.data, self.batches)

    def weights(self, key: Any) -> list[float]:
        if self.endpoints is not None:
            return [float(w) for _, w in self.endpoints]
        return self.path.mixture(key)

    def apply(self, network: nn.Module, key: Any) -> None:
        if self.statistics is None:
            raise LandscapeError("REPAIR.apply before prepare: the networks' statistics are measured in prepare")
        repair_point(network, self.statistics, self.weights(key), self.data, self.batches, self.exact)


def repair(network: nn.Module, endpoints: Sequence[tuple[nn.Module, float]], data: Iterable, batches: int | None = None,
           reset: RecomputeBatchNorm | None = None, exact: bool = False) -> nn.Module:
    """``network`` (e.g. a merge of ``endpoints``' networks) repaired in place to Σ w_k of their statistics; returned."""
    fixup = Repair(data, batches, endpoints, reset, exact)
    if reset is not None:
        reset.apply(network, None)
    fixup.prepare(network)
    fixup.apply(network, None)
    return network
