"""Constrained, breadth-first Dynamic String Sampling (appendix A of Freeman & Bruna 2017).

All interior beads train together, each on F(θ_i) + ζ(‖θ_{i-1} − θ_i‖ + ‖θ_{i+1} − θ_i‖) + κ|cos|, where
the cosine is between θ_{i-1} − θ_{i+1} and θ_i's offset from the neighbours' midpoint: zero on the
hyperplane equidistant from both neighbours. (The paper prints the midpoint as (θ_{i-1} − θ_{i+1})/2;
the hyperplane it describes is through (θ_{i-1} + θ_{i+1})/2, which is what is used here.) Neighbours
enter each bead's penalty as constants, so every bead minimizes its own regularized loss.

After each round of ``bead_steps`` steps the instantaneous threshold is L0(t) = max(L0, worst bead
loss); every segment whose interpolated maximum exceeds it gets a new bead at its maximum (or
halfway). The string is saved after every round and every insertion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
import torch
from torch import nn

from landscape_pl.search.job import Job, budget_spent
from landscape_pl.search.training import StopBelow, fit
from landscape_pl.tasks import Task, get_task


def flat_parameters(network: nn.Module) -> torch.Tensor:
    return torch.cat([p.reshape(-1) for p in network.parameters()])


def string_penalty(theta: torch.Tensor, previous: torch.Tensor, following: torch.Tensor, zeta: float, kappa: float) -> torch.Tensor:
    """ζ(‖θ_{i-1} − θ‖ + ‖θ_{i+1} − θ‖) + κ|d̂ · ô|: spring to the neighbours, and distance off their bisecting hyperplane."""
    spring = (previous - theta).norm() + (following - theta).norm()
    direction = previous - following
    offset = theta - (previous + following) / 2
    cosine = (direction @ offset) / (direction.norm() * offset.norm() + 1e-12)
    return zeta * spring + kappa * cosine.abs()


class StringModule(L.LightningModule):
    """The interior beads as one LightningModule; the ends are fixed and only enter the penalties."""

    def __init__(self, beads: Sequence[nn.Module], left: torch.Tensor, right: torch.Tensor, task: Task,
                 optimizer: Callable, zeta: float, kappa: float) -> None:
        super().__init__()
        self.beads = nn.ModuleList(beads)
        self.register_buffer("left", left.detach().clone())
        self.register_buffer("right", right.detach().clone())
        self.task, self.optimizer, self.zeta, self.kappa = task, optimizer, zeta, kappa

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        thetas = [flat_parameters(bead) for bead in self.beads]
        chain = [self.left, *(t.detach() for t in thetas), self.right]
        losses = [
            self.task.loss(bead(x), y) + string_penalty(theta, chain[i], chain[i + 2], self.zeta, self.kappa)
            for i, (bead, theta) in enumerate(zip(self.beads, thetas))
        ]
        return torch.stack(losses).sum()

    def configure_optimizers(self):
        return self.optimizer(self.beads.parameters())


def train_round(job: Job, zeta: float, kappa: float) -> None:
    """Train all interior beads together for one round, then save each bead and its new loss."""
    string = job.string
    interior = string.beads[1:-1]
    networks = [string.network(b) for b in interior]
    ends = [flat_parameters(string.network(b)) for b in (string.beads[0], string.beads[-1])]
    module = StringModule(networks, *ends, get_task(string.task), job.optimizer, zeta, kappa)
    target = job.alpha * job.threshold
    stop = StopBelow(lambda m: max(job.probe.loss(n) for n in m.beads), target, job.check_every)
    steps_left = job.steps_left()
    max_steps = job.bead_steps if steps_left is None else min(job.bead_steps, steps_left)
    steps = fit(module, job.datamodule, max_steps, job.seed + string.progress["rounds"], job.root, job.accelerator, [stop])
    for bead, network in zip(interior, networks):
        network.cpu()
        bead.loss, bead.steps = job.probe.loss(network), bead.steps + steps
        string.write(bead, network)
        string.forget(bead)
    string.progress["steps"] += steps
    string.progress["rounds"] += 1
    string.save()


def insert_round(job: Job, level: float) -> int:
    """Insert a bead (untrained) in every segment whose maximum exceeds ``level``, within budgets; count them."""
    string, inserted = job.string, 0
    for index in reversed(range(len(string.beads) - 1)):
        segment = job.segment(index)
        left, right = string.beads[index], string.beads[index + 1]
        depth = max(left.depth, right.depth) + 1
        if segment.max_loss <= level or depth > job.budget.depth or budget_spent(job):
            continue
        network = job.new_network()
        network.load_state_dict(job.probe.between(string.state(left), string.state(right), segment.t_star(job.insert_at)))
        job.on_bead(string.add(index + 1, network, job.probe.loss(network), depth))
        inserted += 1
    return inserted


def constrained(job: Job, zeta: float, kappa: float) -> str | None:
    """Rounds of (insert where segments exceed L0(t), train all beads) until connected (None) or out of budget.

    ``progress["phase"]`` records which half of a round is next, so a resumed run does not repeat one.
    """
    string = job.string
    while True:
        if string.progress.get("phase") != "train":
            losses = [b.loss for b in string.beads]
            maxima = [job.segment(i).max_loss for i in range(len(string.beads) - 1)]
            if max(losses + maxima) <= job.threshold:
                return None
            if string.progress["rounds"] >= job.budget.rounds:
                return f"round budget spent ({job.budget.rounds} rounds)"
            left = job.steps_left()
            if left is not None and left <= 0:
                return f"training step budget spent ({job.budget.steps} steps)"
            insert_round(job, max(job.threshold, *losses))
            string.progress["phase"] = "train"
            string.save()
        if string.interior == 0:
            return budget_spent(job) or f"no segment could take a bead within the depth budget ({job.budget.depth})"
        train_round(job, zeta, kappa)
        string.progress["phase"] = "insert"
        string.save()
