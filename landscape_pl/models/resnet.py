"""CIFAR-style ResNets (He et al. 2016, depth 6n+2) with 1x1 projection shortcuts where width changes."""

from __future__ import annotations

from torch import nn

from landscape_pl.models.base import Architecture


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers added to the input (projected by conv1x1-BN when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(Architecture):
    """Stem conv, three stages of ``(depth - 2) / 6`` blocks at widths w, 2w, 4w, pool, linear."""

    def __init__(self, depth: int = 20, width: int = 16, in_channels: int = 3, num_outputs: int = 10) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110), got {depth}")
        blocks_per_stage = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        stages, c_in = [], width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                stages.append(BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.blocks = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c_in, num_outputs)

    def forward(self, x):
        return self.fc(self.pool(self.blocks(self.relu(self.bn1(self.conv1(x))))))
