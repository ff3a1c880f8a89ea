"""Finding an architecture's permutation spec: declared by the module, registered, or derived; then checked.

``spec_of(network)`` looks, in order, for
1. a ``permutation_spec(self) -> PermutationSpec`` method on the network (a user's own architecture);
2. a function registered for its class with ``register(cls, fn)`` (how a user declares a spec for a
   class they cannot edit);
3. the spec derived from the network's traced graph (``landscape_pl.symmetry.trace``).
Whichever it is, it is checked against the state dict and by construction (``check.check_spec``):
a copy permuted by it must compute the same function on an example input (``example``, or a batch
shaped for the network's first layer), so a wrong spec is never used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from landscape_pl.symmetry.check import check_spec
from landscape_pl.symmetry.spec import PermutationSpec
from landscape_pl.symmetry.trace import derive, example_input

SpecFunction = Callable[[nn.Module], PermutationSpec]
REGISTRY: dict[type, SpecFunction] = {}


def register(cls: type, function: SpecFunction) -> None:
    """Declare the spec of ``cls`` (and its subclasses) as ``function(network)``."""
    REGISTRY[cls] = function


@dataclass(frozen=True)
class CheckedSpec:
    """A spec, where it came from (declared, registered or derived), and the relative output change the check measured."""

    spec: PermutationSpec
    source: str
    change: float


def checked_spec(network: nn.Module, example: torch.Tensor | None = None) -> CheckedSpec:
    """The network's permutation spec, checked against its state dict and by permuting a copy on ``example``."""
    parameter = next(network.parameters(), None)
    if example is None:
        example = example_input(network)
    if parameter is not None:
        example = example.to(parameter.device)
    function = next((REGISTRY[c] for c in type(network).__mro__ if c in REGISTRY), None)
    if callable(getattr(network, "permutation_spec", None)):
        spec, source = network.permutation_spec(), "declared"
    elif function is not None:
        spec, source = function(network), "registered"
    else:
        spec, source = derive(network, example), "derived"
    spec.check(network.state_dict(), type(network).__name__)
    return CheckedSpec(spec, source, check_spec(network, spec, example))


def spec_of(network: nn.Module, example: torch.Tensor | None = None) -> PermutationSpec:
    """The network's permutation spec (see ``checked_spec``); a wrong or underivable one raises, naming why."""
    return checked_spec(network, example).spec
