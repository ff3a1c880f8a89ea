"""Learned curves: exact ends, the straight-line start, gradients, per-sample t, BatchNorm, CLI, resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from landscape_pl.cli import LandscapeCLI, main, model_from_checkpoint
from landscape_pl.data import DigitsDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network, save_network
from landscape_pl.models import ResNet
from landscape_pl.modules.curve import CurveModule, curve_rows, per_example_outputs
from landscape_pl.paths import line
from landscape_pl.paths.curves import Bezier, PolyChain, curve
from landscape_pl.paths.gradients import draw_t

CURVE_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "digits" / "curve.yaml"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def flat_parameters(network: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in network.parameters()])


def fit_curve(root: Path, a: Path, b: Path, *extra: str) -> Path:
    """A curve fit through the CLI; returns its last.ckpt."""
    main(["fit", "--config", str(CURVE_CONFIG), f"--model.init_args.start={a}", f"--model.init_args.end={b}",
          f"--trainer.default_root_dir={root}", *QUIET, *extra])
    return sorted(root.glob("lightning_logs/version_*/checkpoints/last.ckpt"))[-1]


class UserNet(nn.Module):
    """A user's own network (a plain nn.Module, no landscape_pl base class): conv-BN-ReLU stem, a residual
    conv-BN block added to its input, global average pool, linear read-out. Checkpoints record its spec."""

    def __init__(self, channels: int = 6, num_outputs: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU())
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.head = nn.Linear(channels, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        h = torch.relu(h + self.bn(self.conv(h)))  # the skip connection
        return self.head(h.mean((2, 3)))


def random_endpoint(build, path: Path, seed: int, spec: dict | None = None) -> Path:
    """An endpoint checkpoint of a freshly built network, with BatchNorm affine parameters and running
    statistics moved off their defaults, so the two ends differ in every entry."""
    torch.manual_seed(seed)
    network = build()
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for m in network.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return save_network(network, path, "classification", spec)


ARCHITECTURES = {
    "resnet8": (lambda: ResNet(depth=8, width=4, in_channels=1), None),  # records its own spec
    "user_module": (UserNet, {"class_path": f"{UserNet.__module__}.UserNet", "init_args": {}}),
}


@pytest.fixture(scope="module", params=["tinynet", *ARCHITECTURES])
def bn_endpoints(request, tmp_path_factory) -> SimpleNamespace:
    """Two BatchNorm endpoints on 1x8x8 digits input: trained TinyNets, a small ResNet, a user's own nn.Module."""
    if request.param == "tinynet":
        ends = request.getfixturevalue("digits_bn_endpoints")
        return SimpleNamespace(a=ends.a, b=ends.b)
    build, spec = ARCHITECTURES[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    return SimpleNamespace(a=random_endpoint(build, folder / "a.ckpt", 1, spec), b=random_endpoint(build, folder / "b.ckpt", 2, spec))


def test_user_module_round_trips_through_its_checkpoint(tmp_path):
    path = random_endpoint(UserNet, tmp_path / "user.ckpt", 3, ARCHITECTURES["user_module"][1])
    loaded = load_network(path)
    assert type(loaded.network) is UserNet and loaded.spec["class_path"].endswith("UserNet")


@pytest.fixture(scope="module")
def trained_curve(digits_endpoints, tmp_path_factory) -> Path:
    return fit_curve(tmp_path_factory.mktemp("curve"), digits_endpoints.a, digits_endpoints.b, "--trainer.max_epochs=4")


@pytest.mark.parametrize("kind, degree, bends", [("bezier", 2, 1), ("bezier", 4, 1), ("polychain", 2, 3)])
def test_curve_ends_are_the_endpoints_exactly(bn_endpoints, kind, degree, bends):
    module = CurveModule(str(bn_endpoints.a), str(bn_endpoints.b), curve=kind, degree=degree, bends=bends)
    module.free.data += torch.randn_like(module.free)  # control points off the segment
    path = module.path()
    ends = [load_network(bn_endpoints.a).network, load_network(bn_endpoints.b).network]
    assert torch.equal(path.point(0.0), flat_parameters(ends[0]))
    assert torch.equal(path.point(1.0), flat_parameters(ends[1]))
    # the module's network at t = 0 / 1 (its forward) is the endpoint network: outputs bit for bit,
    # with the end's BatchNorm statistics in eval mode and with batch statistics in training mode
    x = torch.rand(6, 1, 8, 8)
    for t, end in zip((0.0, 1.0), ends):
        for training in (False, True):
            module.network.load_state_dict(end.state_dict())
            module.network.train(training), end.train(training)
            with torch.no_grad():
                assert torch.equal(module(x, t=t), end(x)), (t, training)


@pytest.mark.parametrize("kind, degree, bends", [("bezier", 2, 1), ("bezier", 3, 1), ("bezier", 5, 1), ("polychain", 2, 1), ("polychain", 2, 4)])
def test_controls_on_the_segment_give_the_straight_line(digits_endpoints, kind, degree, bends):
    a, b = (load_network(p).network.state_dict() for p in (digits_endpoints.a, digits_endpoints.b))
    path, straight = curve(a, b, kind, degree, bends), line(a, b)
    assert len(path.anchors) == (degree + 1 if kind == "bezier" else bends + 2)
    for t in torch.linspace(0, 1, 23).tolist():
        torch.testing.assert_close(path.point(t), straight.point(t), rtol=0, atol=2e-6)
    assert torch.allclose(path.basis(torch.linspace(0, 1, 23)).sum(1), torch.ones(23), atol=1e-6)


def autograd_gradient(module: CurveModule, x, y, coefficients) -> torch.Tensor:
    """Reference: ∂(batch-mean loss)/∂(free anchors) by autograd through functional_call, group by group."""
    free = module.free.detach().clone().requires_grad_()
    network, names = module.network, module.anchors.names
    network.train()
    total = 0
    for c, xg, yg in zip(coefficients, x.tensor_split(len(coefficients)), y.tensor_split(len(coefficients))):
        theta = c[module.held] @ module.fixed + c[module.trained] @ free
        params = {n: v.view(s) for n, v, s in zip(names, theta.split(module.anchors.sizes), module.anchors.shapes)}
        buffers = {n: b.clone() for n, b in network.named_buffers()}
        total = total + module.task.summed_loss(torch.func.functional_call(network, (params, buffers), (xg,)), yg)
    (gradient,) = torch.autograd.grad(total / len(y), free)
    return gradient


@pytest.mark.parametrize("groups, vmapped", [(1, False), (3, False), (4, True)])
def test_scaled_gradient_equals_autograd(bn_endpoints, groups, vmapped):
    torch.manual_seed(0)
    module = CurveModule(str(bn_endpoints.a), str(bn_endpoints.b), degree=3, train_end=True,
                         t_groups=groups, vmap_groups=vmapped)
    module.free.data += 0.01 * torch.randn_like(module.free)
    x, y = torch.rand(24, 1, 8, 8), torch.randint(0, 10, (24,))
    coefficients = module.basis(draw_t(module.hparams.t_seed, 0, 0, 0, groups))  # the t training_step draws at step 0, batch 0
    module.training_step((x, y), 0).backward()
    reference = autograd_gradient(module, x, y, coefficients)
    torch.testing.assert_close(module.free.grad, reference, rtol=1e-5, atol=1e-6)  # float32 sums in another order


def test_per_sample_outputs_equal_standalone_networks(bn_endpoints):
    torch.manual_seed(1)
    module = CurveModule(str(bn_endpoints.a), str(bn_endpoints.b))
    module.free.data += 0.05 * torch.randn_like(module.free)
    network = module.network.eval()
    x, ts = torch.rand(10, 1, 8, 8), torch.rand(10)
    coefficients = module.basis(ts)
    thetas = coefficients[:, module.held] @ module.fixed + coefficients[:, module.trained] @ module.free.detach()
    with torch.no_grad():
        mixed = per_example_outputs(network, module.anchors.names, thetas, x[:, None])[:, 0]
        for i, t in enumerate(ts.tolist()):
            module.slots.write(module.path().point(t))
            torch.testing.assert_close(mixed[i], network(x[i : i + 1])[0], rtol=1e-5, atol=1e-5)


def test_exported_point_has_update_bn_statistics(bn_endpoints, tmp_path):
    """curve-point recomputes BatchNorm at t exactly as torch.optim.swa_utils.update_bn on that network."""
    module = CurveModule(str(bn_endpoints.a), str(bn_endpoints.b))
    torch.manual_seed(2)
    module.free.data += 0.05 * torch.randn_like(module.free)
    ckpt = tmp_path / "curve.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "pytorch-lightning_version": "2"}, ckpt)
    data = json.dumps({"class_path": "landscape_pl.data.DigitsDataModule", "init_args": {"flatten": False}})
    main(["curve-point", "--ckpt", str(ckpt), "--t", "0.3", "--out", str(tmp_path / "p.ckpt"), "--data", data, "--accelerator", "cpu"])
    exported = load_network(tmp_path / "p.ckpt").network
    reference = load_network(bn_endpoints.a).network
    module.slots.tensors = [dict(reference.named_parameters())[n] for n in module.anchors.names]
    module.slots.write(module.path().point(0.3))
    loader = DigitsDataModule(flatten=False).eval_dataloader("train")
    torch.optim.swa_utils.update_bn(((x, y) for x, y in loader), reference)
    for (name, mine), theirs in zip(exported.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6, msg=name)
    assert any("running_mean" in n for n in exported.state_dict())
    # `test` accepts the exported point and scores what the curve evaluation at t = 0.3 scores
    main(["curve", "--ckpt", str(ckpt), "--t", "[0.3]", "--splits", "[test]", "--out", str(tmp_path / "eval"), "--data", data,
          "--accelerator", "cpu", "--tensorboard", "false", "--progress", "false"])
    (row,) = list(csv.DictReader((tmp_path / "eval" / "path.csv").open()))
    argv = ["test", "--ckpt_path", str(tmp_path / "p.ckpt"), "--data", data, "--trainer.accelerator=cpu", "--trainer.logger=false", *QUIET]
    metrics = LandscapeCLI(args=model_from_checkpoint(argv)).trainer.callback_metrics
    assert float(metrics["test/loss"]) == pytest.approx(float(row["loss"]), rel=1e-6)
    assert float(metrics["test/accuracy"]) == pytest.approx(float(row["accuracy"]), abs=1e-6)


def read_losses(path: Path, split: str) -> list[float]:
    with path.open() as handle:
        return [float(r["loss"]) for r in csv.DictReader(handle) if r["split"] == split]


def test_cli_end_to_end(trained_curve, digits_endpoints, tmp_path):
    """fit -> curve (grid) -> curve-point -> validate and test the exported point -> curve-ensembles."""
    out = tmp_path / "eval"
    main(["curve", "--ckpt", str(trained_curve), "--out", str(out), "--points", "11", "--progress", "false"])
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "path.png").is_file() and any((out / "tensorboard").iterdir())
    assert summary["training_loss"] > 0
    for split in ("train", "test"):
        numbers = summary[split]
        assert {"mean_accuracy", "min_accuracy", "barrier", "mean_loss", "loss_spectrum"} <= set(numbers)
        assert numbers["min_accuracy"] <= numbers["mean_accuracy"] <= 1 and len(numbers["loss_spectrum"]) == 6
    # the learned curve's mean training loss is below that of its straight-line start
    main(["interpolate", "--start", str(digits_endpoints.a), "--end", str(digits_endpoints.b), "--t_min", "0", "--t_max", "1",
          "--points", "11", "--out", str(tmp_path / "line"), "--progress", "false", "--tensorboard", "false"])
    line_mean = sum(read_losses(tmp_path / "line" / "path.csv", "train")) / 11
    assert summary["train"]["mean_loss"] < line_mean
    # an exported point is an ordinary endpoint checkpoint
    point = tmp_path / "mid.ckpt"
    main(["curve-point", "--ckpt", str(trained_curve), "--t", "0.5", "--out", str(point)])
    mid = [r for r in csv.DictReader((out / "path.csv").open()) if r["t"] == "0.5" and r["split"] == "test"]
    assert len(mid) == 1
    for command, stage in (("validate", "val"), ("test", "test")):  # both score the test split, as the curve row does
        argv = [command, "--ckpt_path", str(point), "--data", "landscape_pl.data.DigitsDataModule", f"--trainer.default_root_dir={tmp_path}", *QUIET]
        metrics = LandscapeCLI(args=model_from_checkpoint(argv)).trainer.callback_metrics
        assert float(metrics[f"{stage}/loss"]) == pytest.approx(float(mid[0]["loss"]), rel=1e-6), command
        assert float(metrics[f"{stage}/accuracy"]) == pytest.approx(float(mid[0]["accuracy"]), abs=1e-6), command
    # ensembles: the curve at {0, 1} is exactly the two independent endpoints
    main(["curve-ensembles", "--ckpt", str(trained_curve), "--independent", json.dumps([str(digits_endpoints.a), str(digits_endpoints.b)]),
          "--out", str(tmp_path / "ens")])
    rows = list(csv.DictReader((tmp_path / "ens" / "ensembles.csv").open()))
    assert [r["members"] for r in rows] == ["2", "3", "2"]
    assert rows[0]["accuracy"] == rows[2]["accuracy"] and rows[0]["loss"] == rows[2]["loss"]
    assert (tmp_path / "ens" / "ensembles.md").read_text().count("\n") == 5


def test_evaluation_along_the_curve_defaults_to_61_points():
    """As a callback and as a command, the default grid is 61 points of t on [0, 1]."""
    import inspect

    from landscape_pl.callbacks import PathEvaluation
    from landscape_pl.commands.curve import curve as curve_command
    from landscape_pl.paths.grid import t_grid

    assert PathEvaluation().ts == t_grid(0.0, 1.0, 61)
    assert inspect.signature(curve_command).parameters["points"].default == 61


def test_resume_continues_with_control_points_and_optimizer_state(digits_endpoints, tmp_path):
    options = ["--trainer.limit_train_batches=6", "--model.init_args.optimizer.init_args.momentum=0.9"]
    straight = fit_curve(tmp_path / "straight", digits_endpoints.a, digits_endpoints.b, "--trainer.max_epochs=2", *options)
    first = fit_curve(tmp_path / "resumed", digits_endpoints.a, digits_endpoints.b, "--trainer.max_epochs=1", *options)
    resumed = fit_curve(tmp_path / "resumed", digits_endpoints.a, digits_endpoints.b, "--trainer.max_epochs=2",
                        f"--ckpt_path={first}", *options)
    assert resumed != first
    torch.testing.assert_close(curve_rows(str(resumed)), curve_rows(str(straight)), rtol=0, atol=1e-6)
    assert not torch.allclose(curve_rows(str(first)), curve_rows(str(straight)))


def test_bad_input(digits_endpoints, digits_bn_endpoints, trained_curve, tmp_path):
    a, b = str(digits_endpoints.a), str(digits_endpoints.b)
    with pytest.raises(LandscapeError, match=r"different architectures: first difference at layers\.1\.weight"):
        CurveModule(a, str(digits_bn_endpoints.a))
    with pytest.raises(LandscapeError, match="is a curve checkpoint, not an endpoint"):
        CurveModule(a, str(trained_curve))
    with pytest.raises(LandscapeError, match="degree=0"):
        CurveModule(a, b, degree=0)
    with pytest.raises(LandscapeError, match="bends=-1"):
        CurveModule(a, b, curve="polychain", bends=-1)
    with pytest.raises(LandscapeError, match="t_groups=0"):
        CurveModule(a, b, t_groups=0)
    with pytest.raises(LandscapeError, match="not a curve checkpoint"):
        CurveModule(a, b, init=a)
    with pytest.raises(LandscapeError, match=r"t=1.5 is outside \[0.0, 1.0\]"):
        CurveModule(a, b).path().check([0.0, 1.5])
    with pytest.raises(SystemExit) as exit_info:
        main(["curve", "--ckpt", str(trained_curve), "--t", "[0.5, -0.1]", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert isinstance(CurveModule(a, b, curve="polychain", bends=2).path(), PolyChain)
    assert isinstance(CurveModule(a, b).path(), Bezier)
