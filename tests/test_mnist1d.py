"""MNIST-1D: generated locally (no download), seeded, cached, the package's fixed split, trainable through the CLI."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from conftest import CONFIGS

from landscape_pl.cli import main
from landscape_pl.data import MNIST1DDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network


def tensors(data: MNIST1DDataModule, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    return data.split(split).tensors


def test_the_published_set_has_its_shapes_classes_and_split(tmp_path):
    data = MNIST1DDataModule(root=str(tmp_path))
    (x, y), (x_test, y_test) = tensors(data, "train"), tensors(data, "test")
    assert (x.shape, x_test.shape, y.shape, y_test.shape) == ((4000, 40), (1000, 40), (4000,), (1000,))
    assert (x.dtype, y.dtype) == (torch.float32, torch.long)
    assert set(y.tolist()) == set(y_test.tolist()) == set(range(10))
    both = torch.cat([x, x_test])
    assert abs(both.mean().item()) < 1e-5 and abs(both.std().item() - 1) < 1e-3  # the package centres and scales the whole set
    assert data.cache == tmp_path / "mnist1d" / "mnist1d_n5000_test0.2_seed42.pt" and data.cache.is_file()
    batch, labels = next(iter(data.train_dataloader()))
    assert batch.shape == (100, 40) and labels.shape == (100,)


def test_generation_is_seeded_cached_and_leaves_the_global_generators_alone(tmp_path):
    numpy_state, python_state = np.random.get_state(), random.getstate()
    first = MNIST1DDataModule(num_samples=200, root=str(tmp_path / "one"))
    x, y = tensors(first, "train")
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist() and random.getstate() == python_state
    again = MNIST1DDataModule(num_samples=200, root=str(tmp_path / "two"))  # generated anew, elsewhere: the same examples
    assert torch.equal(tensors(again, "train")[0], x) and torch.equal(tensors(again, "train")[1], y)
    other = MNIST1DDataModule(num_samples=200, generation_seed=7, root=str(tmp_path / "one"))
    assert not torch.equal(tensors(other, "train")[0], x)
    assert sorted(p.name for p in (tmp_path / "one" / "mnist1d").iterdir()) == [
        "mnist1d_n200_test0.2_seed42.pt", "mnist1d_n200_test0.2_seed7.pt"]
    marked = {"x_train": torch.zeros(3, 40), "y_train": torch.zeros(3, dtype=torch.long),
              "x_test": torch.ones(2, 40), "y_test": torch.ones(2, dtype=torch.long)}
    torch.save(marked, first.cache)
    assert torch.equal(tensors(MNIST1DDataModule(num_samples=200, root=str(tmp_path / "one")), "test")[0], torch.ones(2, 40))
    first.cache.write_bytes(b"not a checkpoint")  # a damaged cache (or one holding anything else) is generated again
    assert torch.equal(tensors(MNIST1DDataModule(num_samples=200, root=str(tmp_path / "one")), "train")[0], x)
    torch.save({"x_train": x}, first.cache)
    assert torch.equal(tensors(MNIST1DDataModule(num_samples=200, root=str(tmp_path / "one")), "test")[1], tensors(first, "test")[1])


def test_the_split_is_fixed_and_data_seed_orders_training_batches_only(tmp_path):
    one, two, same = (MNIST1DDataModule(num_samples=200, batch_size=20, data_seed=seed, root=str(tmp_path)) for seed in (0, 1, 0))
    assert tensors(one, "train")[0].shape == (160, 40) and tensors(one, "test")[0].shape == (40, 40)
    assert all(torch.equal(a, b) for a, b in zip(tensors(one, "test"), tensors(two, "test")))
    assert torch.equal(next(iter(one.eval_dataloader("train")))[0], next(iter(two.eval_dataloader("train")))[0])
    first = [next(iter(data.train_dataloader()))[1] for data in (one, two, same)]
    assert torch.equal(first[0], first[2]) and not torch.equal(first[0], first[1])


@pytest.mark.parametrize("arguments, message", [
    ({"num_samples": 10}, "num_samples=10"), ({"test_fraction": 1.0}, "test_fraction=1.0"), ({"batch_size": 0}, "batch_size=0")])
def test_bad_arguments_are_named(arguments, message):
    with pytest.raises(LandscapeError, match=message):
        MNIST1DDataModule(**arguments)


@pytest.mark.parametrize("recipe", ["mlp", "mlp_deep", "mlp_deep_bn", "mlp_deep_repair"])
def test_a_recipe_trains_through_the_cli(recipe, tmp_path):
    main(["fit", "--config", str(CONFIGS / "mnist1d" / f"{recipe}.yaml"), f"--trainer.default_root_dir={tmp_path}",
          "--trainer.max_epochs=1", "--trainer.limit_train_batches=3", "--trainer.enable_progress_bar=false",
          "--trainer.enable_model_summary=false", f"--data.init_args.root={tmp_path / 'data'}", "--data.init_args.num_samples=300"])
    (last,) = tmp_path.glob("lightning_logs/version_0/checkpoints/last.ckpt")
    network = load_network(last).network
    widths = {"mlp": 2 * [256], "mlp_deep": 8 * [128], "mlp_deep_bn": 8 * [128], "mlp_deep_repair": 10 * [128]}[recipe]
    assert [m.out_features for m in network.modules() if isinstance(m, torch.nn.Linear)] == [*widths, 10]
    x, _ = MNIST1DDataModule(num_samples=300, root=str(tmp_path / "data")).split("test").tensors
    assert network(x).shape == (60, 10)
