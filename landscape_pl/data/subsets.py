"""Seeded shares of the training split: what alignment looks at, and the batches the Hessian is taken on."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.errors import LandscapeError


def seeded_subset(dataset: Dataset, count: int, seed: int) -> Subset:
    """``count`` examples drawn without replacement by ``seed`` alone, in dataset order: the same on
    every rank and in every run."""
    index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count].sort().values
    return Subset(dataset, index.tolist())


def alignment_batches(datamodule: LandscapeDataModule, fraction: float, seed: int) -> DataLoader:
    """A seeded random ``fraction`` of the training split, unaugmented, in evaluation batches.

    ``align --fraction`` and PAM's activation initialization use the same subset for the same seed,
    so PAM starts from exactly the permutation ``align`` writes.
    """
    if not 0 < fraction <= 1:
        raise LandscapeError(f"fraction={fraction}: the share of training data to align on must be in (0, 1]")
    dataset = datamodule.split("train")
    count = max(1, round(fraction * len(dataset)))
    return DataLoader(seeded_subset(dataset, count, seed), batch_size=datamodule.eval_batch_size, shuffle=False)


def training_subset(datamodule: LandscapeDataModule, count: int, seed: int, what: str) -> DataLoader:
    """``count`` seeded training examples, unaugmented, in evaluation batches; more than the split holds
    is refused, naming both sizes and ``what`` asked."""
    dataset = datamodule.split("train")
    if not 1 <= count <= len(dataset):
        raise LandscapeError(f"{what}={count}: the training split has {len(dataset)} examples; "
                             f"ask for 1 to {len(dataset)}")
    return DataLoader(seeded_subset(dataset, count, seed), batch_size=datamodule.eval_batch_size, shuffle=False)
