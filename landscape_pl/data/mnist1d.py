"""MNIST-1D (Greydanus 2020), generated locally: a second embedded data set, harder than the digits.

Each example is one of ten 1-D digit templates padded, translated, scaled, sheared, smoothed and
noised into a 40-sample sequence. Small networks stay well below perfect accuracy on it (the
40-256-256-10 MLP of configs/mnist1d/mlp.yaml: 62% test accuracy), so what breaks a merged or
interpolated network shows, where the bundled digits are nearly solved by anything. The ``mnist1d``
package generates it with numpy and scipy, no download; the tensors are cached under ``root`` (the
``data`` folder the torchvision sets use), one file per set of generation arguments.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from landscape_pl.atomic import replacing
from landscape_pl.data.base import LandscapeDataModule, Split
from landscape_pl.errors import LandscapeError

KEYS = ("x_train", "y_train", "x_test", "y_test")


def generate(num_samples: int, train_fraction: float, seed: int) -> dict[str, torch.Tensor]:
    """The data set as ``mnist1d.data.make_dataset`` makes it (no download), as float32/long tensors.

    ``make_dataset`` seeds numpy's and Python's global generators; their states are put back after,
    so generating the data never changes the random numbers the caller draws next.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = num_samples, train_fraction, seed
    states = np.random.get_state(), random.getstate()
    try:
        made = make_dataset(args)
    finally:
        np.random.set_state(states[0])
        random.setstate(states[1])
    return {
        "x_train": torch.as_tensor(made["x"], dtype=torch.float32), "y_train": torch.as_tensor(made["y"], dtype=torch.long),
        "x_test": torch.as_tensor(made["x_test"], dtype=torch.float32), "y_test": torch.as_tensor(made["y_test"], dtype=torch.long),
    }


def read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached tensors (read weights_only: tensors only, no code), or None for a missing or damaged cache."""
    if not path.is_file():
        return None
    try:
        cached = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - any unreadable cache is generated again, as if it were missing
        return None
    if not isinstance(cached, dict) or set(cached) != set(KEYS) or not all(isinstance(v, torch.Tensor) for v in cached.values()):
        return None
    return cached


class MNIST1DDataModule(LandscapeDataModule):
    """MNIST-1D's 40-sample sequences (one channel, flattened) in ten classes; the package's own fixed split.

    The default arguments are the package's published set (5,000 examples, 4,000 train / 1,000 test,
    generation seed 42). ``generation_seed`` picks the examples, ``data_seed`` only their training order.
    """

    task = "classification"

    def __init__(
        self,
        num_samples: int = 5000,
        test_fraction: float = 0.2,
        generation_seed: int = 42,
        root: str = "data",
        batch_size: int = 100,
        eval_batch_size: int = 2000,
        data_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, data_seed, num_workers)
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 20:
            raise LandscapeError(f"data num_samples={num_samples!r}: MNIST-1D needs at least 20 examples (2 per class); "
                                 "set data.init_args.num_samples to 20 or more")
        if not 0 < test_fraction < 1:
            raise LandscapeError(f"data test_fraction={test_fraction!r} must lie strictly between 0 and 1")
        self.num_samples, self.test_fraction, self.generation_seed = num_samples, test_fraction, generation_seed
        self.root = root

    @property
    def cache(self) -> Path:
        """The cached tensors of these generation arguments (numbers only, so the name is always a safe file name)."""
        return Path(self.root) / "mnist1d" / f"mnist1d_n{self.num_samples}_test{self.test_fraction!r}_seed{self.generation_seed}.pt"

    def tensors(self) -> dict[str, torch.Tensor]:
        """The cache if it holds the four tensors, else the data generated and cached."""
        cached = read_cache(self.cache)
        if cached is not None:
            return cached
        made = generate(self.num_samples, 1.0 - self.test_fraction, self.generation_seed)
        self.cache.parent.mkdir(parents=True, exist_ok=True)
        with replacing(self.cache, "wb") as handle:
            torch.save(made, handle)
        return made

    def prepare_data(self) -> None:
        self.tensors()

    def make_split(self, split: Split, train_transforms: bool) -> Dataset:
        made = self.tensors()
        return TensorDataset(made[f"x_{split}"], made[f"y_{split}"])
