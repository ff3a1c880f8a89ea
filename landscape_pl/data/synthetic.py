"""The toy tasks of the DSS paper: polynomial regression and the 3-point cyclic permutation."""

from __future__ import annotations

from typing import Literal

import torch
from torch.utils.data import Dataset, TensorDataset

from landscape_pl.data.base import LandscapeDataModule, Split

POLYNOMIALS = {
    "quadratic": lambda x: 0.5 * x**2 + 0.25 * x + 0.1,
    "cubic": lambda x: 8 * x**3 - 10 * x**2 + 3 * x,
}


class PolynomialDataModule(LandscapeDataModule):
    """y = p(x) for x uniform on [0, 1]: a 1-D regression whose landscape DSS can map in seconds."""

    task = "regression"

    def __init__(
        self,
        polynomial: Literal["quadratic", "cubic"] = "quadratic",
        num_train: int = 1000,
        num_test: int = 200,
        sample_seed: int = 0,
        batch_size: int = 100,
        eval_batch_size: int = 1000,
        data_seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, data_seed)
        if polynomial not in POLYNOMIALS:
            raise ValueError(f"polynomial must be one of {sorted(POLYNOMIALS)}, got {polynomial!r}")
        self.polynomial = polynomial
        self.sizes = {"train": num_train, "test": num_test}
        self.sample_seed = sample_seed

    def make_split(self, split: Split, train_transforms: bool) -> Dataset:
        seed = self.sample_seed + (0 if split == "train" else 1)
        x = torch.rand(self.sizes[split], 1, generator=torch.Generator().manual_seed(seed))
        return TensorDataset(x, POLYNOMIALS[self.polynomial](x))


class CyclicPermutationDataModule(LandscapeDataModule):
    """Three points of the plane mapped to their cyclic shift x1->x2->x3->x1 (DSS appendix D).

    Train and test are the same three points: the task is to fit them exactly.
    """

    task = "regression"

    def __init__(
        self,
        points: tuple[tuple[float, float], ...] = ((1.0, 0.0), (-0.5, 0.866), (-0.5, -0.866)),
        data_seed: int = 0,
    ) -> None:
        super().__init__(batch_size=3, eval_batch_size=3, data_seed=data_seed)
        if len(points) != 3 or any(len(p) != 2 for p in points):
            raise ValueError(f"points must be three (x, y) pairs, got {points!r}")
        self.points = points

    def make_split(self, split: Split, train_transforms: bool) -> Dataset:
        x = torch.tensor(self.points, dtype=torch.float32)
        return TensorDataset(x, x.roll(-1, dims=0))
