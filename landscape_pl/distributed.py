"""Splitting a list of work items (t values, plane points, beads) across DDP ranks, and gathering back.

One helper for every analysis, so T points on k processes cost about T/k, and the gathered result
is identical to a single-process run (items keep their global index).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch.distributed as dist

T = TypeVar("T")


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(items: Sequence[T]) -> list[tuple[int, T]]:
    """This rank's share of ``items`` as (global index, item), strided so shares differ by at most one."""
    rank, size = world()
    return [(i, items[i]) for i in range(rank, len(items), size)]


def gather(indexed: list[tuple[int, Any]]) -> list[Any]:
    """All ranks' (index, result) pairs merged and put back in global order, on every rank."""
    _, size = world()
    if size > 1:
        parts: list[list[tuple[int, Any]] | None] = [None] * size
        dist.all_gather_object(parts, indexed)
        indexed = [pair for part in parts for pair in (part or [])]
    return [result for _, result in sorted(indexed, key=lambda pair: pair[0])]
