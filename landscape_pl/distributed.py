"""Splitting a list of work items (t values, plane points, beads) across DDP ranks, and gathering back.

One helper for every analysis, so T points on k processes cost about T/k, and the gathered result
is identical to a single-process run (items keep their global index). Commands launched by
``torchrun`` call ``join_launched_group`` first and write their files through ``on_rank_zero``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def join_launched_group() -> None:
    """Under torchrun (WORLD_SIZE > 1) join the process group, so a command's grid is split across ranks.

    NCCL with each rank on its LOCAL_RANK GPU when CUDA is available, else gloo; a no-op outside
    torchrun and when a group is already up (a Trainer's, or a second call).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


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


def on_rank_zero(write: Callable[[], Any]) -> None:
    """Run ``write`` (a command's files, TensorBoard run, printed lines) on rank 0 only, then hold every
    rank until it is done, so a caller that reads the files back on any rank (a study stage checking its
    outputs, ``mli`` and ``align`` reading path.csv) finds them written once, completely."""
    rank, size = world()
    if rank == 0:
        write()
    if size > 1:
        dist.barrier()
