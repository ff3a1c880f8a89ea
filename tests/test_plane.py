"""Loss planes: through three networks (Gram-Schmidt axes), through a trained curve's ends and control
point, around one network (filter-normalized random directions)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape_pl.cli import main
from landscape_pl.commands.plane import plane
from landscape_pl.data import DigitsDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network, save_network
from landscape_pl.models import MLP, TinyNet
from landscape_pl.modules.curve import curve_rows
from landscape_pl.paths import evaluate, recompute_batchnorm
from landscape_pl.paths.plane import grid, plane_through, random_plane
from landscape_pl.tasks import get_task

QUIET = ["--progress=false", "--tensorboard=false"]
CURVE_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "digits" / "curve.yaml"


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


def fit_curve(root: Path, endpoints, *extra: str) -> Path:
    """A few steps of a digits curve fit through the CLI (enough to move the control points off the line)."""
    main(["fit", "--config", str(CURVE_CONFIG), f"--model.init_args.start={endpoints.a}", f"--model.init_args.end={endpoints.b}",
          f"--trainer.default_root_dir={root}", "--trainer.max_epochs=1", "--trainer.limit_train_batches=6",
          "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", *extra])
    (ckpt,) = root.glob("lightning_logs/version_0/checkpoints/last.ckpt")
    return ckpt


def plane_geometry(rows: torch.Tensor, control: int) -> tuple[float, float, float]:
    """(|θ2 - θ1|, x and y of the control point) by Gram-Schmidt over the curve's anchors, in float64."""
    start, end, middle = rows[0].double(), rows[-1].double(), rows[control].double()
    d2, d3 = end - start, middle - start
    a = float(d2.norm())
    b = float(d2 @ d3) / a
    return a, b, float((d3 - b * d2 / a).norm())


def test_plane_through_a_curve_checkpoint_draws_the_curve_in_its_plane(digits_endpoints, tmp_path):
    """θ1 (start) at the origin, θ2 (end) on the x axis, the control point above; a quadratic Bezier's own
    path lies in that plane, from θ1 at t = 0 to θ2 at t = 1."""
    ckpt = fit_curve(tmp_path / "curve", digits_endpoints)
    main(["plane", "--curve_ckpt", str(ckpt), "--points=3", "--splits=[train]", f"--out={tmp_path / 'plane'}", *QUIET])
    summary = json.loads((tmp_path / "plane/plane.json").read_text())
    distance, control_x, control_y = plane_geometry(curve_rows(str(ckpt)), 1)
    theta1, theta2, control = summary["anchors"]
    assert [a["label"] for a in summary["anchors"]] == ["θ1 (t=0)", "θ2 (t=1)", "control point"]
    assert (theta1["x"], theta1["y"]) == (0.0, 0.0) and theta2["y"] == 0.0
    assert theta2["x"] == pytest.approx(distance, rel=1e-9)
    assert control["x"] == pytest.approx(control_x, rel=1e-9) and control["y"] == pytest.approx(control_y, rel=1e-9)
    assert control_y > 1e-3 * distance  # the trained control point left the straight segment
    assert theta1["train_loss"] == train_loss(load_network(digits_endpoints.a).network)  # coefficients (1, 0, 0)
    assert theta2["train_loss"] == pytest.approx(train_loss(load_network(digits_endpoints.b).network), rel=1e-5)
    assert summary["networks"] == [str(digits_endpoints.a), str(digits_endpoints.b), str(ckpt)]
    assert summary["curve_ckpt"] == str(ckpt) and summary["curve_control"] == 1
    curve = summary["curve"]
    assert [p["t"] for p in curve] == pytest.approx([k / 20 for k in range(21)], abs=1e-12)
    assert (curve[0]["x"], curve[0]["y"], curve[0]["distance_off_plane"]) == (0.0, 0.0, 0.0)
    assert curve[-1]["x"] == pytest.approx(distance, rel=1e-9) and abs(curve[-1]["y"]) < 1e-9 * distance
    middle = curve[10]  # t = 1/2: θ = θ1/4 + θc/2 + θ2/4
    assert middle["x"] == pytest.approx(control_x / 2 + distance / 4, rel=1e-6)
    assert middle["y"] == pytest.approx(control_y / 2, rel=1e-6)
    assert max(p["distance_off_plane"] for p in curve) <= 1e-6 * distance
    with (tmp_path / "plane/plane.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 9
    assert (tmp_path / "plane/plane.png").stat().st_size > 0


def test_a_curve_with_several_control_points_needs_one_picked(digits_endpoints, tmp_path):
    ckpt = fit_curve(tmp_path / "cubic", digits_endpoints, "--model.init_args.degree=3", "--trainer.limit_train_batches=2")
    options = {"points": 2, "splits": ["test"], "tensorboard": False, "progress": False}
    with pytest.raises(LandscapeError, match=rf"{ckpt}.* has 2 control points.*--curve_control K \(1 to 2"):
        plane(curve_ckpt=str(ckpt), out=str(tmp_path / "refused"), **options)
    assert not (tmp_path / "refused").exists()
    with pytest.raises(LandscapeError, match="control points 1 to 2"):
        plane(curve_ckpt=str(ckpt), curve_control=3, **options)
    with pytest.raises(LandscapeError, match="not --networks and --curve_ckpt"):
        plane(networks=[str(digits_endpoints.a)] * 3, curve_ckpt=str(ckpt), **options)
    summary = plane(curve_ckpt=str(ckpt), curve_control=2, curve_points=5, out=str(tmp_path / "second"), **options)
    distance, control_x, control_y = plane_geometry(curve_rows(str(ckpt)), 2)
    control = summary["anchors"][2]
    assert control["label"] == "control point 2" and summary["curve_control"] == 2
    assert control["x"] == pytest.approx(control_x, rel=1e-9) and control["y"] == pytest.approx(control_y, rel=1e-9)
    curve = summary["curve"]
    assert (curve[0]["x"], curve[0]["y"]) == (0.0, 0.0) and curve[-1]["x"] == pytest.approx(distance, rel=1e-9)
    assert curve[0]["distance_off_plane"] == 0.0 and curve[-1]["distance_off_plane"] < 1e-9 * distance
    assert max(p["distance_off_plane"] for p in curve[1:-1]) > 1e-6 * distance  # the other control point is off this plane
