"""VGG16 with BatchNorm and the 512-512 classifier head of the alignment paper."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from landscape_pl.models.base import Architecture

# Channel counts of VGG16's 13 conv layers; "M" is a 2x2 max pool.
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(Architecture):
    """Conv3x3-BN-ReLU stacks with max pools, global pooling, then hidden linear layers."""

    def __init__(
        self,
        layers: Sequence[int | str] = VGG16,
        in_channels: int = 3,
        hidden: Sequence[int] = (512, 512),
        num_outputs: int = 10,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        c_in = in_channels
        for layer in layers:
            if layer == "M":
                blocks.append(nn.MaxPool2d(2))
                continue
            blocks += [nn.Conv2d(c_in, int(layer), 3, padding=1), nn.BatchNorm2d(int(layer)), nn.ReLU()]
            c_in = int(layer)
        blocks += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        for width in hidden:
            blocks += [nn.Linear(c_in, width), nn.ReLU()]
            c_in = width
        blocks.append(nn.Linear(c_in, num_outputs))
        self.layers = nn.Sequential(*blocks)

    def forward(self, x):
        return self.layers(x)


class VGG16BN(VGG):
    """VGG16-BN: 15,253,578 parameters for 10 classes."""

    def __init__(self, in_channels: int = 3, num_outputs: int = 10) -> None:
        super().__init__(VGG16, in_channels, (512, 512), num_outputs)
