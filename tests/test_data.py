"""Data modules: torchvision sets read from files in their real on-disk formats, seeds, clear errors."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONFIGS

from landscape_pl.cli import main
from landscape_pl.data import CyclicPermutationDataModule, DigitsDataModule, PolynomialDataModule, VisionDataModule
from landscape_pl.errors import LandscapeError

RNG = np.random.default_rng(0)


def idx(path: Path, array: np.ndarray) -> None:
    """The MNIST idx format: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian sizes, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, name: str, n_train: int, n_test: int) -> dict:
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = RNG.integers(0, 256, (n, 28, 28)), RNG.integers(0, 10, n)
        idx(raw / f"{prefix}-images-idx3-ubyte", images)
        idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        data["train" if prefix == "train" else "test"] = (images, labels)
    return data


def write_cifar(root: Path, name: str, n_train: int, n_test: int) -> dict:
    """CIFAR's python pickles: dicts with 'data' (N, 3072 uint8, channel-major) and labels; a meta file."""
    folder, label_key, meta = {
        "CIFAR10": ("cifar-10-batches-py", "labels", ("batches.meta", "label_names", 10)),
        "CIFAR100": ("cifar-100-python", "fine_labels", ("meta", "fine_label_names", 100)),
    }[name]
    base = root / folder
    base.mkdir(parents=True)
    files = (["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"], ["test_batch"]) \
        if name == "CIFAR10" else (["train"], ["test"])
    data = {}
    for split, names, n in (("train", files[0], n_train), ("test", files[1], n_test)):
        chunks = []
        for file in names:
            images, labels = RNG.integers(0, 256, (n, 3072), dtype=np.uint8), RNG.integers(0, meta[2], n).tolist()
            with (base / file).open("wb") as handle:
                pickle.dump({"data": images, label_key: labels}, handle)
            chunks.append((images, labels))
        data[split] = (np.concatenate([c[0] for c in chunks]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1),
                       sum((c[1] for c in chunks), []))
    with (base / meta[0]).open("wb") as handle:
        pickle.dump({meta[1]: [f"class{i}" for i in range(meta[2])]}, handle)
    return data


def write_stl10(root: Path, n_train: int, n_test: int) -> dict:
    """STL10's binaries: uint8 images (N, 3, 96, 96) stored column-major, labels 1..10 as uint8."""
    base = root / "stl10_binary"
    base.mkdir(parents=True)
    data = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = RNG.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8), RNG.integers(1, 11, n, dtype=np.uint8)
        np.transpose(images, (0, 1, 3, 2)).tofile(base / f"{split}_X.bin")
        labels.tofile(base / f"{split}_y.bin")
        data[split] = (images.transpose(0, 2, 3, 1), (labels - 1).tolist())
    RNG.integers(0, 256, (2, 3, 96, 96), dtype=np.uint8).tofile(base / "unlabeled_X.bin")  # part of the real folder
    (base / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    return data


@pytest.fixture
def skip_md5(monkeypatch):
    """torchvision checks CIFAR's and STL10's md5 sums; our small files cannot match, so only that check goes."""
    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.stl10 as stl10

    for module in (cifar, stl10):  # the file must still exist; only its checksum is not compared
        monkeypatch.setattr(module, "check_integrity", lambda path, md5=None: os.path.isfile(path))


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100", "STL10"])
def test_vision_data_reads_real_formats(name, tmp_path, skip_md5):
    writer = {"MNIST": write_mnist, "FashionMNIST": write_mnist, "CIFAR10": write_cifar, "CIFAR100": write_cifar}
    data = write_stl10(tmp_path, 6, 4) if name == "STL10" else writer[name](tmp_path, name, 6, 4)
    module = VisionDataModule(name, root=str(tmp_path), normalize=False, augment=False, batch_size=4, eval_batch_size=100, num_workers=0)
    for split in ("train", "test"):
        x, y = next(iter(module.eval_dataloader(split)))
        images, labels = data[split]
        expected = torch.tensor(np.asarray(images), dtype=torch.float32) / 255
        expected = expected.unsqueeze(1) if expected.ndim == 3 else expected.permute(0, 3, 1, 2)
        assert torch.equal(x, expected), split
        assert y.tolist() == list(labels)
    train_x, _ = next(iter(module.train_dataloader()))
    side = 96 if name == "STL10" else 32 if name.startswith("CIFAR") else 28
    assert train_x.shape == (4, 1 if "MNIST" in name else 3, side, side)


def test_normalization_and_augmentation(tmp_path, skip_md5):
    write_cifar(tmp_path, "CIFAR10", 64, 8)
    plain = VisionDataModule("CIFAR10", root=str(tmp_path), augment=False, eval_batch_size=1000, num_workers=0)
    raw = VisionDataModule("CIFAR10", root=str(tmp_path), normalize=False, augment=False, eval_batch_size=1000, num_workers=0)
    x, _ = next(iter(plain.eval_dataloader("train")))
    r, _ = next(iter(raw.eval_dataloader("train")))
    mean, std = torch.tensor((0.4914, 0.4822, 0.4465)), torch.tensor((0.2470, 0.2435, 0.2616))
    assert torch.allclose(x, (r - mean[:, None, None]) / std[:, None, None], atol=1e-6)
    augmented = VisionDataModule("CIFAR10", root=str(tmp_path), normalize=False, augment=True, batch_size=320, num_workers=0)
    a, _ = next(iter(augmented.train_dataloader()))
    assert a.shape == r.shape and not torch.equal(a.sort(0).values, r.sort(0).values)  # crops/flips/rotations moved pixels
    again, _ = next(iter(augmented.eval_dataloader("train")))
    assert torch.equal(again, r)  # evaluation is never augmented


def test_missing_dataset_is_one_clear_error(tmp_path):
    module = VisionDataModule("CIFAR10", root=str(tmp_path / "nothing"), num_workers=0)
    with pytest.raises(LandscapeError) as error:
        module.eval_dataloader("test")
    message = str(error.value)
    assert str((tmp_path / "nothing").resolve()) in message and "download" in message


def test_missing_dataset_through_the_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / "cifar10" / "tinyten.yaml"), f"--data.init_args.root={tmp_path / 'cifar'}",
              f"--trainer.default_root_dir={tmp_path / 'run'}", "--data.init_args.num_workers=0",
              "--trainer.enable_progress_bar=false"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (message,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert message.startswith("error: CIFAR10 test data not found")  # the sanity check reads test data first
    assert str(tmp_path / "cifar") in message and "data.download: true" in message


def first_batch(data_seed: int, global_seed: int) -> torch.Tensor:
    torch.manual_seed(global_seed)
    return next(iter(DigitsDataModule(data_seed=data_seed).train_dataloader()))[1]


def test_data_seed_alone_decides_order():
    assert torch.equal(first_batch(1, 0), first_batch(1, 5))
    assert not torch.equal(first_batch(1, 0), first_batch(2, 0))


def test_init_and_data_seeds_are_separate_in_trained_runs(digits_endpoints):
    """The fixture's two runs differ in both seeds: their initializations differ; same init_seed would not."""
    from landscape_pl.io import read_checkpoint

    a, b = (read_checkpoint(p)["state_dict"] for p in (digits_endpoints.a_init, digits_endpoints.b_init))
    assert all(not torch.equal(a[k], b[k]) for k in a)


def test_digits_and_synthetic_tasks():
    digits = DigitsDataModule()
    assert (len(digits.split("train")), len(digits.split("test"))) == (1438, 359)
    x, y = digits.split("train")[0]
    assert x.shape == (64,) and 0 <= x.min() and x.max() <= 1
    assert DigitsDataModule(flatten=False).split("test")[0][0].shape == (1, 8, 8)
    for polynomial, f in (("quadratic", lambda x: 0.5 * x**2 + 0.25 * x + 0.1), ("cubic", lambda x: 8 * x**3 - 10 * x**2 + 3 * x)):
        x, y = PolynomialDataModule(polynomial).split("train").tensors
        assert x.shape == (1000, 1) and 0 <= x.min() and x.max() <= 1 and torch.allclose(y, f(x))
    x, y = CyclicPermutationDataModule().split("train").tensors
    assert torch.equal(y, x[[1, 2, 0]])
    assert PolynomialDataModule.task == CyclicPermutationDataModule.task == "regression"
