"""Fully connected networks: the nets of the straight-line question, MLI and DSS papers."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from landscape_pl.models.base import Architecture

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "identity": nn.Identity}


def activation(name: str) -> nn.Module:
    """One activation by name; the error lists the choices."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r} is unknown; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(Architecture):
    """Flatten, then ``widths`` hidden layers with one activation, then a linear read-out.

    ``batchnorm`` puts a BatchNorm1d between each hidden Linear and its activation (the deep BatchNorm
    MLP of REPAIR's experiments). Kept as one ``nn.Sequential`` so that permutation specs are derived
    from it automatically.
    """

    def __init__(
        self,
        in_features: int = 64,
        widths: Sequence[int] = (500,),
        num_outputs: int = 10,
        activation: str = "relu",
        bias: bool = True,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        sizes = [in_features, *widths]
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out, bias=bias), *([nn.BatchNorm1d(fan_out)] if batchnorm else []), _activation(activation)]
        layers.append(nn.Linear(sizes[-1], num_outputs, bias=bias))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


_activation = activation
