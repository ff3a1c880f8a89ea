"""Gradients with respect to the parameters at t, from an ordinary network and no functional graph.

θ(t) is linear in whatever a curve learns (control points, PAM's offset and permuted endpoint), so a
training step needs only ∂L/∂θ(t_g) for each group g of examples; the learnable pieces then get
b(t_g)-weighted sums of those. Writing θ(t_g) into a plain copy of the network and running its
ordinary forward and backward costs the same as an endpoint training step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from landscape_pl.paths.anchors import NetworkSlots
from landscape_pl.tasks import Task


def group_gradients(
    slots: NetworkSlots, network: torch.nn.Module, task: Task, x: torch.Tensor, y: torch.Tensor,
    rows: Sequence[torch.Tensor], weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(G, P) gradients of the batch-mean loss w.r.t. θ_g = Σ_k weights[g, k] rows[k], for the G
    equal groups of the batch.

    Group g is an ordinary small batch of the network at θ_g (written in place, no P-sized
    temporary), with its own BatchNorm batch statistics in training mode. Returns the gradients,
    the summed loss and the correct count.
    """
    params = slots.tensors
    groups = len(weights)
    grads = x.new_empty((groups, sum(slots.sizes)), dtype=params[0].dtype)
    loss_sum, correct = x.new_zeros((), dtype=torch.float32), x.new_zeros((), dtype=torch.float32)  # token tasks count fractions
    for g, (xg, yg) in enumerate(zip(x.tensor_split(groups), y.tensor_split(groups))):
        slots.write_combination(rows, weights[g].tolist())
        outputs = network(xg)
        loss = task.summed_loss(outputs, yg)
        (loss / len(y)).backward()
        torch.cat([p.grad.reshape(-1) for p in params], out=grads[g])
        for p in params:
            p.grad = None
        loss_sum += loss.detach()
        correct += task.correct(outputs.detach(), yg)
    return grads, loss_sum, correct


def draw_t(seed: int, step: int, batch: int, rank: int, groups: int) -> torch.Tensor:
    """``groups`` uniform t on [0, 1] from a generator keyed by (seed, step, batch, rank) alone: a resumed
    run draws the t it would have drawn, and ranks and accumulated batches draw different ones."""
    key = hash((seed, step, batch, rank)) & 0x7FFF_FFFF_FFFF_FFFF  # ints hash the same in every process
    return torch.rand(groups, generator=torch.Generator().manual_seed(key))
