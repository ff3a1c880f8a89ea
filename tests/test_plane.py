"""Loss planes: through three networks (Gram-Schmidt axes), around one (filter-normalized random directions)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from landscape_pl.cli import main
from landscape_pl.data import DigitsDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network, save_network
from landscape_pl.models import MLP, TinyNet
from landscape_pl.paths import evaluate, recompute_batchnorm
from landscape_pl.paths.plane import grid, plane_through, random_plane
from landscape_pl.tasks import get_task

QUIET = ["--progress=false", "--tensorboard=false"]


def train_loss(network, flatten: bool = True) -> float:
    return evaluate(network, DigitsDataModule(flatten=flatten).eval_dataloader("train"), get_task("classification"))[0]


def test_plane_through_three_networks_reproduces_them_and_draws_a_curve(digits_endpoints, tmp_path):
    e = digits_endpoints
    networks = [str(e.a), str(e.b), str(e.a_init)]
    curve = tmp_path / "curve.csv"
    curve.write_text(f"t,checkpoint\n0,{e.a}\n1,{e.b}\n")
    main(["plane", "--networks", json.dumps(networks), "--points=4", "--margin=0.25", "--splits=[train]",
          f"--curve=[{curve}]", f"--out={tmp_path / 'plane'}", *QUIET])
    summary = json.loads((tmp_path / "plane/plane.json").read_text())
    a, b, init = (load_network(p).network for p in networks)
    theta1, theta2 = summary["anchors"][0], summary["anchors"][1]
    assert (theta1["x"], theta1["y"]) == (0.0, 0.0)
    assert theta1["train_loss"] == train_loss(a)  # coefficients (1, 0, 0): θ1 bit for bit
    assert theta2["train_loss"] == pytest.approx(train_loss(b), rel=1e-5)
    assert summary["anchors"][2]["train_loss"] == pytest.approx(train_loss(init), rel=1e-5)
    distance = float(torch.cat([(p - q).detach().reshape(-1) for p, q in zip(a.parameters(), b.parameters())]).norm())
    assert theta2["x"] == pytest.approx(distance, rel=1e-6) and theta2["y"] == 0.0 and summary["anchors"][2]["y"] > 0
    projected = summary["curve"]
    assert projected[0]["x"] == pytest.approx(0.0, abs=1e-5) and projected[1]["x"] == pytest.approx(distance, rel=1e-5)
    assert all(abs(p["y"]) < 1e-4 and p["distance_off_plane"] < 1e-3 for p in projected)
    with (tmp_path / "plane/plane.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 16 and {r["split"] for r in rows} == {"train"}
    xs = sorted({float(r["x"]) for r in rows})
    extent = max(distance, summary["anchors"][2]["y"], summary["anchors"][2]["x"])
    assert xs[0] == pytest.approx(min(0.0, summary["anchors"][2]["x"]) - 0.25 * extent, rel=1e-6)
    assert (tmp_path / "plane/plane.png").stat().st_size > 0


def test_batchnorm_statistics_are_recomputed_at_every_plane_point(tmp_path):
    paths = []
    for seed in range(3):
        torch.manual_seed(seed)
        network = TinyNet(layers=[[4, 3, 1, 1]], in_channels=1)
        paths.append(str(save_network(network, tmp_path / f"net{seed}.ckpt", "classification")))
    main(["plane", "--networks", json.dumps(paths), "--points=2", "--splits=[train]", f"--out={tmp_path / 'plane'}",
          "--data=landscape_pl.data.DigitsDataModule", "--data.flatten=false", *QUIET])
    at_theta1 = json.loads((tmp_path / "plane/plane.json").read_text())["anchors"][0]["train_loss"]
    network = load_network(paths[0]).network
    stored = train_loss(network, flatten=False)
    recompute_batchnorm(network, DigitsDataModule(flatten=False).eval_dataloader("train"))
    assert at_theta1 == pytest.approx(train_loss(network, flatten=False), rel=1e-6)
    assert abs(at_theta1 - stored) > 1e-3  # the stored (initial) statistics would give another loss


def test_collinear_networks_are_refused(digits_endpoints, tmp_path, capsys):
    a, b = (load_network(p).network for p in (digits_endpoints.a, digits_endpoints.b))
    middle = MLP(64, [128], 10)
    middle.load_state_dict({k: (a.state_dict()[k] + b.state_dict()[k]) / 2 for k in a.state_dict()})
    path = save_network(middle, tmp_path / "middle.ckpt", "classification")
    with pytest.raises(SystemExit) as exit_info:
        main(["plane", "--networks", json.dumps([str(digits_endpoints.a), str(digits_endpoints.b), str(path)]),
              f"--out={tmp_path / 'p'}", *QUIET])
    assert exit_info.value.code == 2 and "collinear" in capsys.readouterr().err
    with pytest.raises(LandscapeError, match="same network"):
        plane_through([a.state_dict(), a.state_dict(), b.state_dict()], ["a", "a again", "b"])


def test_random_plane_is_filter_normalized_around_its_center():
    torch.manual_seed(0)
    network = TinyNet(layers=[[4, 3, 1, 1], [6, 3, 1, 1]], in_channels=1)
    state = network.state_dict()
    names = [n for n, _ in network.named_parameters()]
    surface = random_plane(state, "net", names, seed=3)
    theta = surface.anchors.matrix[0]
    assert torch.equal(surface.point((0.0, 0.0)), theta)
    for axis in (0, 1):
        direction = surface.anchors.unflatten(surface.point((1.0, 0.0) if axis == 0 else (0.0, 1.0)) - theta)
        for name, value in state.items():
            if not torch.is_floating_point(value):
                continue
            if name not in names or value.dim() == 1:
                assert direction[name].abs().max() < 1e-6, name  # biases, BatchNorm and buffers stay put
            else:
                filters = direction[name].reshape(len(value), -1).norm(dim=1)
                np.testing.assert_allclose(filters, value.reshape(len(value), -1).norm(dim=1), rtol=1e-4)
    assert grid(surface, 3, 0.0, span=2.0) == ([-2.0, 0.0, 2.0], [-2.0, 0.0, 2.0])
    other = random_plane(state, "net", names, seed=4)
    assert not torch.equal(other.point((1.0, 0.0)), surface.point((1.0, 0.0)))


def test_random_plane_command_evaluates_the_center(digits_endpoints, tmp_path):
    main(["plane", "--center", str(digits_endpoints.a), "--points=3", "--span=0.5", "--splits=[test]",
          f"--out={tmp_path / 'random'}", *QUIET])
    summary = json.loads((tmp_path / "random/plane.json").read_text())
    test_loss = evaluate(load_network(digits_endpoints.a).network, DigitsDataModule().eval_dataloader("test"),
                         get_task("classification"))[0]
    assert summary["anchors"][0]["test_loss"] == test_loss and summary["grid"]["x"] == [-0.5, 0.5]
