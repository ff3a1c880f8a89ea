"""Fully connected networks: the nets of the straight-line question, MLI and DSS papers."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from landscape_pl.models.base import Architecture

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "identity": nn.Identity}
GAINS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "identity": "linear"}  # nn.init.calculate_gain's names
INITS = ("torch", "kaiming")


def activation(name: str) -> nn.Module:
    """One activation by name; the error lists the choices."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation {name!r} is unknown; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(Architecture):
    """Flatten, then ``widths`` hidden layers with one activation, then a linear read-out.

    ``batchnorm`` puts a BatchNorm1d between each hidden Linear and its activation (the deep BatchNorm
    MLP of REPAIR's experiments). ``init`` "torch" keeps PyTorch's Linear init, whose variance shrinks
    the signal by about 3x per layer, so a deep plain MLP trains only with adaptive optimizers;
    "kaiming" draws weights from N(0, gain² / fan_in) with the activation's gain (gain² = 2 for ReLU)
    and zero biases (He et al.), which keeps the signal's scale through the layers, so SGD trains a deep
    plain MLP too. Kept as one ``nn.Sequential`` so that permutation specs are derived from it
    automatically.
    """

    def __init__(
        self,
        in_features: int = 64,
        widths: Sequence[int] = (500,),
        num_outputs: int = 10,
        activation: str = "relu",
        bias: bool = True,
        batchnorm: bool = False,
        init: str = "torch",
    ) -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"MLP init {init!r} is unknown; choose one of {list(INITS)}")
        self.init, self.gain = init, GAINS.get(activation)
        layers: list[nn.Module] = [nn.Flatten()]
        sizes = [in_features, *widths]
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out, bias=bias), *([nn.BatchNorm1d(fan_out)] if batchnorm else []), _activation(activation)]
        layers.append(nn.Linear(sizes[-1], num_outputs, bias=bias))
        self.layers = nn.Sequential(*layers)
        self.initialize()

    def initialize(self) -> None:
        """Redraw the Linear layers' weights by ``init`` (called after every layer's own reset)."""
        if self.init == "kaiming":
            for layer in self.layers:
                if isinstance(layer, nn.Linear):
                    nn.init.kaiming_normal_(layer.weight, nonlinearity=self.gain)
                    if layer.bias is not None:
                        nn.init.zeros_(layer.bias)

    def forward(self, x):
        return self.layers(x)


_activation = activation
