"""Plain DataLoaders as a data module, so the library takes whatever a notebook already has."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Union

from torch.utils.data import DataLoader, Dataset, RandomSampler

from landscape_pl.data.base import LandscapeDataModule, Split
from landscape_pl.errors import LandscapeError

Data = Union[LandscapeDataModule, DataLoader, Mapping[str, DataLoader], tuple]


class LoaderDataModule(LandscapeDataModule):
    """A training loader (and optionally a test loader) seen through the data-module contract.

    Analyses read deterministic batches: a shuffling loader is re-batched in order with its own
    batch size; training (bead strings, curves) uses the training loader as given.
    """

    def __init__(self, train: DataLoader, test: DataLoader | None = None, task: str = "classification") -> None:
        super().__init__(batch_size=train.batch_size or 1, eval_batch_size=train.batch_size or 1)
        self.task = task
        self.loaders = {"train": train, **({"test": test} if test is not None else {})}

    def make_split(self, split: Split, train_transforms: bool) -> Dataset:
        if split not in self.loaders:
            raise LandscapeError(f"split {split!r} was asked for but no {split} DataLoader was given; "
                                 f"pass data={{'train': ..., '{split}': ...}} or leave {split!r} out of splits")
        return self.loaders[split].dataset

    def train_dataloader(self) -> DataLoader:
        return self.loaders["train"]

    def eval_dataloader(self, split: Split) -> DataLoader:
        self.split(split)  # the error above for a split that was not given
        loader = self.loaders[split]
        if isinstance(loader.sampler, RandomSampler):
            return DataLoader(loader.dataset, batch_size=loader.batch_size, shuffle=False, collate_fn=loader.collate_fn)
        return loader


def as_datamodule(data: Data, task: str = "classification") -> LandscapeDataModule:
    """A LandscapeDataModule as is; a DataLoader (the training data), a (train, test) pair or a
    {"train": ..., "test": ...} mapping of DataLoaders wrapped."""
    if isinstance(data, LandscapeDataModule):
        return data
    if isinstance(data, DataLoader):
        return LoaderDataModule(data, task=task)
    if isinstance(data, tuple) and len(data) == 2:
        return LoaderDataModule(data[0], data[1], task)
    if isinstance(data, Mapping) and "train" in data:
        unknown = set(data) - {"train", "test"}
        if unknown:
            raise LandscapeError(f"data has splits {sorted(unknown)}; only 'train' and 'test' are known")
        return LoaderDataModule(data["train"], data.get("test"), task)
    raise LandscapeError(f"data must be a LandscapeDataModule, a DataLoader, a (train, test) pair or a dict of "
                         f"DataLoaders with a 'train' key; got {type(data).__name__}")
