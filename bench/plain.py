"""Floors in plain torch, written independently of the code under test: the least work any implementation
of a measured operation must do (a training loop, a BatchNorm recompute, an evaluation pass, θ written
into a network), and the synthetic CIFAR-shaped data the benchmarks run on."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from timing import Window, now, synchronize

Loss = Callable[..., torch.Tensor]


def cifar_like(images: int, seed: int = 0) -> TensorDataset:
    """Random 3x32x32 images with random labels of 10 classes (no download)."""
    generator = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(images, 3, 32, 32, generator=generator), torch.randint(0, 10, (images,), generator=generator))


def parameters(network: nn.Module) -> list[torch.Tensor]:
    return [p.detach() for p in network.parameters()]


@torch.no_grad()
def write(params: Sequence[torch.Tensor], anchors: Sequence[Sequence[torch.Tensor]], weights: Sequence[float]) -> None:
    """θ = Σ_k weights[k] anchors[k], written into the network's parameter tensors in place."""
    for p, *rows in zip(params, *anchors):
        p.zero_()
        for weight, row in zip(weights, rows):
            p.add_(row, alpha=weight)


@torch.no_grad()
def bn_pass(network: nn.Module, batches: Iterable, device: torch.device) -> None:
    """BatchNorm statistics from scratch: running stats reset, momentum None (exact averages), train-mode forwards."""
    for m in network.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    network.train()
    for x, *_ in batches:
        network(x.to(device))


@torch.no_grad()
def eval_pass(network: nn.Module, batches: Iterable, device: torch.device, loss: Loss = F.cross_entropy) -> float:
    """Mean loss of an eval-mode no-grad pass, summed on the device and read once."""
    network.eval()
    total, count = torch.zeros((), dtype=torch.float64, device=device), 0
    for x, y in batches:
        y = y.to(device)
        total += loss(network(x.to(device)), y, reduction="sum").double()
        count += len(y)
    return (total / count).item()


def point(network: nn.Module, anchors: Sequence[Sequence[torch.Tensor]], weights: Sequence[float], bn_batches: Iterable,
          eval_batches: Iterable, device: torch.device, loss: Loss = F.cross_entropy) -> float:
    """One point of a path: θ written, BatchNorm recomputed, one evaluation pass; its mean loss."""
    write(parameters(network), anchors, weights)
    bn_pass(network, bn_batches, device)
    return eval_pass(network, eval_batches, device, loss)


def train_steps(network: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable, device: torch.device,
                loss: Loss = F.cross_entropy) -> Window:
    """An ordinary training loop; seconds from the end of its first step (the warm-up) to the end of its last."""
    network.train()
    start = end = None
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        loss(network(x.to(device)), y.to(device)).backward()
        optimizer.step()
        synchronize(device)
        end = now()
        start = end if start is None else start
    return Window(end - start)
