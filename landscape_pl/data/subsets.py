"""The seeded share of the training split that alignment looks at."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Subset

from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.errors import LandscapeError


def alignment_batches(datamodule: LandscapeDataModule, fraction: float, seed: int) -> DataLoader:
    """A seeded random ``fraction`` of the training split, unaugmented, in evaluation batches.

    ``align --fraction`` and PAM's activation initialization use the same subset for the same seed,
    so PAM starts from exactly the permutation ``align`` writes.
    """
    if not 0 < fraction <= 1:
        raise LandscapeError(f"fraction={fraction}: the share of training data to align on must be in (0, 1]")
    dataset = datamodule.split("train")
    count = max(1, round(fraction * len(dataset)))
    index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count].sort().values
    return DataLoader(Subset(dataset, index.tolist()), batch_size=datamodule.eval_batch_size, shuffle=False)
