"""The data-module contract every analysis relies on.

Training uses ``train_dataloader`` (shuffled, augmented, ordered by ``data_seed``); every
analysis (paths, BatchNorm recomputation, alignment) uses ``eval_dataloader(split)``, which is
deterministic and never augmented, so two evaluations of one network always see the same data.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from landscape_pl.errors import LandscapeError

Split = Literal["train", "test"]


class LandscapeDataModule(L.LightningDataModule):
    """Train and test splits, with separate seeds for the data order and nothing else random.

    ``task`` is "classification" or "regression"; the CLI hands it to the model.
    """

    task: str = "classification"

    def __init__(self, batch_size: int = 128, eval_batch_size: int = 1000, data_seed: int = 0, num_workers: int = 0) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise LandscapeError(f"data {name}={value!r}: a batch size is a positive number of examples; "
                                     f"set data.init_args.{name} to 1 or more")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.data_seed = data_seed
        self.num_workers = num_workers
        self._order = torch.Generator().manual_seed(data_seed)
        self._splits: dict[str, Dataset] | None = None

    @abstractmethod
    def make_split(self, split: Split, train_transforms: bool) -> Dataset:
        """The dataset of one split; ``train_transforms`` turns augmentation on."""

    def split(self, split: Split, train_transforms: bool = False) -> Dataset:
        if split not in ("train", "test"):
            raise LandscapeError(f"split must be 'train' or 'test', got {split!r}")
        key = f"{split}/{train_transforms}"
        self._splits = self._splits or {}
        if key not in self._splits:
            self._splits[key] = self.make_split(split, train_transforms)
        return self._splits[key]

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=self._order if shuffle else None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.split("train", train_transforms=True), self.batch_size, shuffle=True)

    def eval_dataloader(self, split: Split) -> DataLoader:
        """Deterministic, unaugmented batches of ``split`` for analyses."""
        return self._loader(self.split(split), self.eval_batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def test_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def predict_dataloader(self) -> DataLoader:
        return self.eval_dataloader("test")

    def state_dict(self) -> dict:
        """The data-order generator, so a resumed run sees the batches it would have seen."""
        return {"order": self._order.get_state()}

    def load_state_dict(self, state_dict: dict) -> None:
        self._order.set_state(state_dict["order"])
