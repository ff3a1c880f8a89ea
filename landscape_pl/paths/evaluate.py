"""Loss and accuracy of a network at many parameter points: the step every analysis shares.

For each point: write θ into the network (no graph), run the point's fix-ups (BatchNorm
recomputation first), then one evaluation pass per split, and the point's measurements (curvature),
whose numbers every row of the point carries as ``extras``. Points are split across DDP ranks and gathered back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from tqdm.auto import tqdm

from landscape_pl.distributed import gather, shard, world
from landscape_pl.paths.anchors import NetworkSlots
from landscape_pl.paths.fixups import Fixup, Measure, RecomputeBatchNorm
from landscape_pl.tasks import Task

if TYPE_CHECKING:
    from landscape_pl.paths.path import Path


@dataclass(frozen=True)
class Row:
    """One evaluation: where (``key``: t, or a plane coordinate), which split, and the numbers; ``extras``
    are the point's measurements (e.g. ``hessian_eig_1``), the same on every split's row of the point."""

    key: Any
    split: str
    loss: float
    accuracy: float | None
    extras: Mapping[str, float] = field(default_factory=dict)

    @property
    def finite(self) -> bool:
        return math.isfinite(self.loss)


@torch.no_grad()
def evaluate(network: nn.Module, batches: Iterable, task: Task) -> tuple[float, float | None]:
    """Mean loss and accuracy over all batches, accumulated on the device and synced once."""
    network.eval()
    device = next(network.parameters()).device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.float64, device=device)  # a token task counts fractions of sequences
    count = 0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        outputs = network(x)
        loss_sum += task.summed_loss(outputs, y).double()
        correct += task.correct(outputs, y)
        count += len(y)
    loss = (loss_sum / count).item()
    if not task.has_accuracy:
        return loss, None
    # argmax of overflowed logits is arbitrary: a non-finite point has no accuracy either
    return loss, (correct.item() / count if math.isfinite(loss) else math.nan)


@dataclass
class Evaluation:
    """What to evaluate each point on: named splits, the task, and the fix-ups run at every point.

    ``bn_data``/``bn_batches`` are the shorthand for the first fix-up, BatchNorm recomputation
    (RESET): ``bn_batches`` None recomputes statistics on the whole ``bn_data`` (the standard
    practice), 0 turns recomputation off; it is off anyway for networks without BatchNorm.
    Further fix-ups (REPAIR, ``symmetry.repair``) run after it, in order.
    """

    splits: Mapping[str, Iterable]
    task: Task
    bn_data: Iterable | None = None
    bn_batches: int | None = None
    progress: bool = True
    fixups: list[Fixup] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.bn_data is not None and self.bn_batches != 0:
            self.fixups.insert(0, RecomputeBatchNorm(self.bn_data, self.bn_batches))

    def at(self, network: nn.Module, key: Any) -> list[Row]:
        """Rows for the network as it is now (its parameters already set to the point ``key``)."""
        for fixup in self.fixups:
            fixup.apply(network, key)
        extras = {name: value for measure in self.measures for name, value in measure.measure(network, key).items()}
        return [Row(key, split, *evaluate(network, batches, self.task), extras) for split, batches in self.splits.items()]

    def points(
        self,
        network: nn.Module,
        names: Sequence[str],
        keys: Sequence[Any],
        params_at: Callable[[Any], torch.Tensor],
        desc: str = "points",
    ) -> list[Row]:
        """Evaluate ``params_at(key)`` for every key; each rank takes its share, all get every row."""
        device = next(network.parameters()).device
        return self._walk(network, names, keys, lambda slots, key: slots.write(params_at(key).to(device)), desc, None)

    def path(self, network: nn.Module, path: "Path", keys: Sequence[Any], desc: str = "points") -> list[Row]:
        """Evaluate a path (line, curve, plane) at every key, θ written in place by ``path.write``."""
        return self._walk(network, path.anchors.names, keys, path.write, desc, path)

    def prepare(self, network: nn.Module, path: "Path | None") -> None:
        """Every fix-up's and measure's once-per-walk step (endpoint statistics), before the first point."""
        for fixup in self.fixups:
            fixup.prepare(network, path)
        for measure in self.measures:
            measure.prepare(network)

    def _walk(self, network: nn.Module, names: Sequence[str], keys: Sequence[Any], write, desc: str,
              path: "Path | None") -> list[Row]:
        slots = NetworkSlots(network, names)
        self.prepare(network, path)
        results = []
        for index, key in tqdm(shard(keys), desc=desc, disable=not self.progress or world()[0] != 0, leave=False):
            write(slots, key)
            results.append((index, self.at(network, key)))
        return [row for rows in gather(results) for row in rows]
