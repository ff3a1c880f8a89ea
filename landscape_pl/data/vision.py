"""torchvision image datasets with the alignment paper's preprocessing.

Users have internet: ``download: true`` fetches a dataset once into ``root``. Without it, a dataset
missing from ``root`` is one clear error naming the folder and the flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torchvision
from torch.utils.data import Dataset
from torchvision import transforms as T

from landscape_pl.data.base import LandscapeDataModule, Split
from landscape_pl.errors import LandscapeError

DatasetName = Literal["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "STL10"]

# Per-channel mean and std of each training set, and the image side, for normalization and cropping.
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...], int]] = {
    "MNIST": ((0.1307,), (0.3081,), 28),
    "FashionMNIST": ((0.2860,), (0.3530,), 28),
    "CIFAR10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 32),
    "CIFAR100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 32),
    "STL10": ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713), 96),
}


class VisionDataModule(LandscapeDataModule):
    """One of MNIST, FashionMNIST, CIFAR10, CIFAR100, STL10 from ``root``.

    ``augment`` applies the alignment paper's random crop (4-pixel padding), horizontal flip and
    rotation (``rotation`` degrees) to training batches only.
    """

    task = "classification"

    def __init__(
        self,
        dataset: DatasetName = "CIFAR10",
        root: str = "data",
        download: bool = False,
        normalize: bool = True,
        augment: bool = True,
        rotation: float = 15.0,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        data_seed: int = 0,
        num_workers: int = 2,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, data_seed, num_workers)
        if dataset not in STATS:
            raise LandscapeError(f"data.dataset {dataset!r} is unknown; choose one of {sorted(STATS)}")
        self.dataset, self.root, self.download = dataset, root, download
        self.normalize, self.augment, self.rotation = normalize, augment, rotation

    def transform(self, train_transforms: bool) -> T.Compose:
        mean, std, side = STATS[self.dataset]
        steps: list = []
        if train_transforms and self.augment:
            steps += [T.RandomCrop(side, padding=4), T.RandomHorizontalFlip(), T.RandomRotation(self.rotation)]
        steps.append(T.ToTensor())
        if self.normalize:
            steps.append(T.Normalize(mean, std))
        return T.Compose(steps)

    def prepare_data(self) -> None:
        if self.download:
            for split in ("train", "test"):
                self._construct(split, None)

    def make_split(self, split: Split, train_transforms: bool) -> Dataset:
        return self._construct(split, self.transform(train_transforms))

    def _construct(self, split: Split, transform) -> Dataset:
        cls = getattr(torchvision.datasets, self.dataset)
        kwargs = {"split": split} if self.dataset == "STL10" else {"train": split == "train"}
        try:
            return cls(root=self.root, transform=transform, download=self.download, **kwargs)
        except RuntimeError as err:
            if "not found" not in str(err).lower():
                raise
            raise LandscapeError(
                f"{self.dataset} {split} data not found under {str(Path(self.root).resolve())!r}. "
                f"Set data.download: true (or --data.download true) to fetch it there once, "
                f"or point data.root at a folder that holds it."
            ) from None
