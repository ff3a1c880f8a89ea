"""What a network is asked to do: the loss it is trained on and whether accuracy means anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F

TaskName = Literal["classification", "regression"]


@dataclass(frozen=True)
class Task:
    """A loss summed over a batch (means are taken once, over the whole data) and a correct-count."""

    name: TaskName
    summed_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    has_accuracy: bool

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.summed_loss(outputs, targets) / len(targets)

    def correct(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Number of correct predictions (zero for regression, where accuracy is not reported)."""
        if not self.has_accuracy:
            return outputs.new_zeros((), dtype=torch.long)
        return (outputs.argmax(dim=1) == targets).sum()


def _mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(outputs.reshape(targets.shape), targets, reduction="sum")


TASKS: dict[str, Task] = {
    "classification": Task("classification", lambda o, y: F.cross_entropy(o, y, reduction="sum"), True),
    "regression": Task("regression", _mse, False),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"task {name!r} is unknown; choose one of {sorted(TASKS)}")
    return TASKS[name]
