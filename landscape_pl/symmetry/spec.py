"""Permutation specs: which axes of which state entries one permutation of hidden units acts on.

Hidden units of a layer can be reordered without changing the function, provided every tensor
that indexes those units (the layer's weight rows, its bias, the BatchNorm weight, bias and running
statistics, the next layer's weight columns) is reordered the same way. A ``Group`` lists those
axes once; a ``PermutationSpec`` is the groups of an architecture in forward order. Everything in
``landscape_pl.symmetry`` (applying, activation alignment, weight matching, PAM's soft permutations)
reads the same spec, so an architecture is described once.

A group also names its *probes*: the modules whose outputs are the group's activations (units on
dim 1; conv channels with their positions as extra samples). A residual stream has several probes
and its cross-correlation is their average (appendix E of the alignment paper).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import torch

from landscape_pl.errors import LandscapeError


@dataclass(frozen=True)
class Axis:
    """Axis ``dim`` of state entry ``entry`` indexes the group's units, ``block`` entries per unit.

    ``block`` > 1 is a flattened conv feature map feeding a linear layer: unit c owns the
    ``block`` = H*W consecutive columns c*H*W ... (c+1)*H*W - 1 (or one attention head's rows).
    ``offset`` > 0 when the units are a slice of the axis, starting there: a BatchNorm after a
    concatenation (DenseNet), the query/key/value rows of an attention block's stacked projection.
    """

    entry: str
    dim: int
    block: int = 1
    offset: int = 0

    def span(self, size: int) -> slice:
        """The entries along ``dim`` that ``size`` units own."""
        return slice(self.offset, self.offset + size * self.block)


@dataclass(frozen=True)
class Probe:
    """Where a group's activations are read: the output of ``module`` (or its input, ``input=True``).

    ``dim`` is the tensor's unit axis: 1 for (batch, units, positions...), the last one for a
    transformer's (batch, tokens, units).
    """

    module: str
    input: bool = False
    dim: int = 1


@dataclass(frozen=True)
class Group:
    """One permutation of ``size`` units, applied to every axis in ``axes``."""

    name: str
    size: int
    axes: tuple[Axis, ...]
    probes: tuple[Probe, ...] = ()


@dataclass(frozen=True)
class PermutationSpec:
    """The permutation groups of one architecture, in forward order.

    Example (a user's two-hidden-layer net, ``fc1 -> relu -> fc2 -> relu -> out``)::

        PermutationSpec((
            Group("fc1", 100, (Axis("fc1.weight", 0), Axis("fc1.bias", 0), Axis("fc2.weight", 1)), (Probe("act1"),)),
            Group("fc2", 50, (Axis("fc2.weight", 0), Axis("fc2.bias", 0), Axis("out.weight", 1)), (Probe("act2"),)),
        ))
    """

    groups: tuple[Group, ...]
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(g.name for g in self.groups))
        if len(set(self.names)) != len(self.names):
            raise LandscapeError(f"permutation spec has repeated group names: {self.names}")

    def __getitem__(self, name: str) -> Group:
        return self.groups[self.names.index(name)]

    @cached_property
    def axes_by_entry(self) -> dict[str, list[tuple[Axis, str]]]:
        """entry name -> [(axis, group name)]: what a tensor needs when it is permuted."""
        table: dict[str, list[tuple[Axis, str]]] = {}
        for group in self.groups:
            for axis in group.axes:
                table.setdefault(axis.entry, []).append((axis, group.name))
        return table

    def check(self, state: Mapping[str, torch.Tensor], label: str = "network") -> None:
        """Every axis names an entry of ``state`` with room for ``group.size * block`` from ``offset``; errors name the axis."""
        for group in self.groups:
            for axis in group.axes:
                if axis.entry not in state:
                    raise LandscapeError(f"permutation group {group.name!r}: {label} has no entry {axis.entry!r}")
                shape = tuple(state[axis.entry].shape)
                if axis.dim >= len(shape) or axis.span(group.size).stop > shape[axis.dim]:
                    raise LandscapeError(
                        f"permutation group {group.name!r} ({group.size} units x {axis.block} from {axis.offset}) does not fit "
                        f"{label}'s {axis.entry} {shape} on dim {axis.dim}"
                    )
