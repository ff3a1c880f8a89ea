"""scikit-learn's bundled handwritten digits: real data that needs no download (the embedded default)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, TensorDataset

from landscape_pl.data.base import LandscapeDataModule, Split


class DigitsDataModule(LandscapeDataModule):
    """1,797 8x8 grey digits scaled to [0, 1]; a fixed, seeded 80/20 train/test split.

    ``flatten`` gives 64-vectors for MLPs; otherwise 1x8x8 images for CNNs.
    """

    task = "classification"

    def __init__(
        self,
        flatten: bool = True,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int = 2000,
        data_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, data_seed, num_workers)
        self.flatten = flatten
        self.test_fraction = test_fraction
        self.split_seed = split_seed

    def make_split(self, split: Split, train_transforms: bool) -> Dataset:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
        y = torch.tensor(digits.target, dtype=torch.long)
        if not self.flatten:
            x = x.reshape(-1, 1, 8, 8)
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.split_seed))
        n_test = int(round(self.test_fraction * len(y)))
        index = order[n_test:] if split == "train" else order[:n_test]
        return TensorDataset(x[index], y[index])
