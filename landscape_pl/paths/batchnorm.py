"""BatchNorm running statistics recomputed for the parameters at hand (appendix C of the alignment paper).

The statistics a network was trained with belong to its own weights; a point on a path needs its
own. This is ``torch.optim.swa_utils.update_bn`` with a batch limit and the network's mode restored.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

import torch
from torch import nn

NORMS = (nn.modules.batchnorm._BatchNorm,)


def batchnorm_layers(network: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in network.modules() if isinstance(m, NORMS) and m.track_running_stats]


def has_batchnorm(network: nn.Module) -> bool:
    return bool(batchnorm_layers(network))


@torch.no_grad()
def recompute_batchnorm(network: nn.Module, batches: Iterable, num_batches: int | None = None) -> None:
    """Reset running statistics and average them over ``num_batches`` batches (all when None).

    Momentum None makes the running values exact cumulative averages over the batches, as update_bn.
    """
    layers = batchnorm_layers(network)
    if not layers:
        return
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    was_training = network.training
    network.train()
    device = next(network.parameters()).device
    for x, *_ in islice(batches, num_batches):
        network(x.to(device, non_blocking=True))
    network.train(was_training)
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
