"""What a network is asked to do: the loss it is trained on and whether accuracy means anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F

TaskName = Literal["classification", "regression", "tokens"]


@dataclass(frozen=True)
class Task:
    """A loss summed over a batch (means are taken once, over the whole data) and a correct-count.

    A sample is one row of the targets: an example, or (``tokens``) a sequence whose loss and
    correct-count are the means over its positions, so every count divides by ``len(targets)``.
    """

    name: TaskName
    summed_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    has_accuracy: bool
    summed_correct: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.summed_loss(outputs, targets) / len(targets)

    def correct(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Number of correct predictions (zero for regression, where accuracy is not reported)."""
        if self.summed_correct is None:
            return outputs.new_zeros((), dtype=torch.long)
        return self.summed_correct(outputs, targets)


def _mse(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(outputs.reshape(targets.shape), targets, reduction="sum")


def _token_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(batch, length, classes) against (batch, length): cross-entropy averaged over each sequence's positions."""
    return F.cross_entropy(outputs.flatten(0, -2), targets.flatten(), reduction="sum") / targets[0].numel()


def _token_correct(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per sequence the fraction of positions predicted right, summed (a float: evaluations accumulate in float64)."""
    return (outputs.argmax(dim=-1) == targets).flatten(1).double().mean(1).sum()


TASKS: dict[str, Task] = {
    "classification": Task("classification", lambda o, y: F.cross_entropy(o, y, reduction="sum"), True,
                           lambda o, y: (o.argmax(dim=1) == y).sum()),
    "regression": Task("regression", _mse, False),
    "tokens": Task("tokens", _token_loss, True, _token_correct),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"task {name!r} is unknown; choose one of {sorted(TASKS)}")
    return TASKS[name]
