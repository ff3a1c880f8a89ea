"""Convolutional networks: a small MNIST-style CNN and Kornblith et al.'s Tiny-10 and Tiny-6."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from landscape_pl.models.base import Architecture


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> list[nn.Module]:
    """The block every Tiny net is made of: conv with bias, BatchNorm, ReLU."""
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding), nn.BatchNorm2d(c_out), nn.ReLU()]


class SimpleCNN(Architecture):
    """Conv-ReLU-MaxPool blocks, then a hidden linear layer and a read-out (MNIST-style)."""

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        num_outputs: int = 10,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size, c_in = image_size, in_channels
        for c_out in channels:
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            size, c_in = size // 2, c_out
        layers += [nn.Flatten(), nn.Linear(c_in * size * size, hidden), nn.ReLU(), nn.Linear(hidden, num_outputs)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


# (out_channels, kernel, stride, padding) per conv layer of Kornblith et al. (2019), Tiny-10.
TINY_TEN = ((16, 3, 1, 1), (16, 3, 1, 1), (32, 3, 2, 1), (32, 3, 1, 1), (32, 3, 1, 1),
            (64, 3, 2, 1), (64, 3, 1, 0), (64, 1, 1, 0))
# Tiny-10 without its layers 2, 4, 5 and 7 (1-based), as the alignment paper describes Tiny-6.
TINY_SIX = tuple(layer for i, layer in enumerate(TINY_TEN, start=1) if i not in (2, 4, 5, 7))


class TinyNet(Architecture):
    """Conv-BN-ReLU layers given as (channels, kernel, stride, padding), global average pool, linear."""

    def __init__(self, layers: Sequence[Sequence[int]] = TINY_TEN, in_channels: int = 3, num_outputs: int = 10) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        c_in = in_channels
        for c_out, kernel, stride, padding in layers:
            blocks += conv_bn_relu(c_in, c_out, kernel, stride, padding)
            c_in = c_out
        blocks += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_outputs)]
        self.layers = nn.Sequential(*blocks)

    def forward(self, x):
        return self.layers(x)


class TinyTen(TinyNet):
    """Tiny-10: 86,778 parameters for 10 classes on RGB input."""

    def __init__(self, in_channels: int = 3, num_outputs: int = 10) -> None:
        super().__init__(TINY_TEN, in_channels, num_outputs)


class TinySix(TinyNet):
    """Tiny-10 less layers 2, 4, 5 and 7."""

    def __init__(self, in_channels: int = 3, num_outputs: int = 10) -> None:
        super().__init__(TINY_SIX, in_channels, num_outputs)
