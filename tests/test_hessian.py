"""Curvature along paths: the Hessian's top eigenvalues, trace and spectral density against the explicit
Hessian of a tiny MLP, the per-point columns through the API, the files and the CLI, under torchrun,
and the inputs that are refused."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_api import DDP_SCRIPT
from test_curves import fit_curve
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import landscape_pl as lp
from landscape_pl.analysis.double_backward import cheap_double_backward
from landscape_pl.analysis.hessian import Objective, check_differentiable, hutchinson_trace, hvp, spectral_density, top_eigenvalues
from landscape_pl.api.lines import PathResult
from landscape_pl.cli import main
from landscape_pl.data.loaders import as_datamodule
from landscape_pl.data.subsets import training_subset
from landscape_pl.errors import LandscapeError
from landscape_pl.io import read_path_csv, save_network
from landscape_pl.models import MLP
from landscape_pl.paths.batchnorm import recompute_batchnorm
from landscape_pl.paths.curvature import HessianSettings

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["--accelerator=cpu", "--progress=false", "--tensorboard=false"]


def summed(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, targets, reduction="sum")


@pytest.fixture(scope="module")
def tiny() -> tuple[Objective, torch.Tensor]:
    """A 4-6-3 tanh MLP in float64 on 32 examples in two batches, and its explicit Hessian."""
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = torch.randn(32, 4, dtype=torch.float64), torch.randint(0, 3, (32,))
    objective = Objective(network, [(x[:20], y[:20]), (x[20:], y[20:])], summed)
    names = [n for n, _ in network.named_parameters()]
    shapes = [p.shape for p in network.parameters()]

    def loss(theta: torch.Tensor) -> torch.Tensor:
        params = {n: v.view(s) for n, v, s in zip(names, theta.split([s.numel() for s in shapes]), shapes)}
        return F.cross_entropy(torch.func.functional_call(network, params, (x,)), y)

    theta = torch.cat([p.detach().reshape(-1) for p in network.parameters()])
    return objective, torch.autograd.functional.hessian(loss, theta)


def test_products_eigenvalues_and_trace_match_the_explicit_hessian(tiny):
    objective, hessian = tiny
    exact = torch.linalg.eigvalsh(hessian)
    v = torch.randn(objective.size, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(hvp(objective, v), hessian @ v, rtol=1e-10, atol=1e-12)
    found = top_eigenvalues(objective, k=3, iterations=objective.size, tolerance=1e-8, generator=torch.Generator().manual_seed(0))
    assert found.converged and found.steps < objective.size
    assert found.values == pytest.approx(exact[-3:].flip(0).tolist(), rel=1e-4)
    mean, error = hutchinson_trace(objective, 100, torch.Generator().manual_seed(1))
    assert 0 < error < 0.5 * abs(float(hessian.trace()))
    assert abs(mean - float(hessian.trace())) <= 3 * error
    assert all(p.grad is None for p in objective.network.parameters())  # nothing written into the network


def test_every_draw_comes_from_the_generator(tiny):
    objective, _ = tiny
    runs = [(top_eigenvalues(objective, 2, 8, 1e-12, torch.Generator().manual_seed(5)),
             hutchinson_trace(objective, 4, torch.Generator().manual_seed(5))) for _ in range(2)]
    assert runs[0] == runs[1]
    assert hutchinson_trace(objective, 4, torch.Generator().manual_seed(6)) != runs[0][1]


def test_the_spectral_density_integrates_to_one_and_covers_the_extreme_eigenvalues(tiny):
    objective, hessian = tiny
    exact = torch.linalg.eigvalsh(hessian)
    spectrum = spectral_density(objective, vectors=3, steps=objective.size, generator=torch.Generator().manual_seed(2))
    grid, density = torch.tensor(spectrum.grid), torch.tensor(spectrum.density)
    assert float(torch.trapezoid(density, grid)) == pytest.approx(1.0, abs=1e-6)
    assert all(sum(w) == pytest.approx(1.0, abs=1e-10) for w in spectrum.weights)
    nodes = [n for row in spectrum.nodes for n in row]
    assert min(nodes) == pytest.approx(float(exact[0]), rel=1e-4) and max(nodes) == pytest.approx(float(exact[-1]), rel=1e-4)
    assert grid[0] < exact[0] and grid[-1] > exact[-1]
    assert (density >= 0).all() and float(density[0]) < 1e-3 * float(density.max())


def explicit_hessian(objective: Objective) -> torch.Tensor:
    """The Hessian of L by torch.autograd.functional (PyTorch's own double backward of every operation)."""
    network = objective.network
    names, shapes = zip(*[(n, p.shape) for n, p in network.named_parameters()])

    def loss(theta: torch.Tensor) -> torch.Tensor:
        params = {n: v.view(s) for n, v, s in zip(names, theta.split([s.numel() for s in shapes]), shapes)}
        return sum(summed(torch.func.functional_call(network, params, (x,)), y) for x, y in objective.batches) / objective.count

    return torch.autograd.functional.hessian(loss, torch.cat([p.detach().reshape(-1) for p in network.parameters()]))


@pytest.mark.parametrize("train", [False, True])
def test_products_through_convolutions_and_batchnorm_match_the_explicit_hessian(train):
    """The substituted second derivatives (every convolution; BatchNorm on running statistics) against PyTorch's:
    strides, tuple padding, dilation, groups, no bias, "same" padding, 1-d, BatchNorm with and without affine."""
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=(1, 0)), nn.BatchNorm2d(4), nn.Tanh(),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2, bias=False), nn.BatchNorm2d(4, affine=False), nn.Softplus(),
        nn.Conv2d(4, 2, 1, padding="same"), nn.Flatten(2), nn.Conv1d(2, 3, 2, stride=2), nn.BatchNorm1d(3), nn.Tanh(),
        nn.Flatten(), nn.Linear(9, 3)).double()
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            if module.affine:
                nn.init.uniform_(module.weight, 0.5, 1.5)
                nn.init.uniform_(module.bias, -0.5, 0.5)
    network.train(train)
    x, y = torch.randn(12, 2, 6, 6, dtype=torch.float64), torch.randint(0, 3, (12,))
    objective = Objective(network, [(x[:7], y[:7]), (x[7:], y[7:])], summed)
    hessian = explicit_hessian(objective)
    assert hessian.shape == (217, 217)
    with cheap_double_backward():  # the substitutions are in the graph that products run through
        grads = torch.autograd.grad(next(objective.losses()), objective.parameters, create_graph=True)
    batchnorm = "NativeBatchNormBackwardBackward0" if train else "MulBackward0"  # batch statistics: PyTorch's BatchNorm
    assert [type(g.grad_fn).__name__ for g in grads[:3]] == ["_ConvolutionGradientBackward"] * 2 + [batchnorm]
    for seed in range(3):
        v = torch.randn(objective.size, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        assert torch.allclose(hvp(objective, v), hessian @ v, rtol=1e-10, atol=1e-12)
    found = top_eigenvalues(objective, k=2, iterations=objective.size, tolerance=1e-9)
    assert found.converged and found.values == pytest.approx(torch.linalg.eigvalsh(hessian)[-2:].flip(0).tolist(), rel=1e-6)
    single = x[0]  # an unbatched convolution (C, H, W) is left to PyTorch
    plain = network[0](single)
    with cheap_double_backward():
        inside = network[0](single)
    assert torch.equal(inside, plain) and type(inside.grad_fn) is type(plain.grad_fn)


class Rounded(nn.Module):
    def forward(self, x):
        return torch.round(x)


class Argmax(nn.Module):
    def forward(self, x):
        return x.argmax(dim=1)


class MaxWithIndices(nn.Module):
    def forward(self, x):
        return tuple(x.max(dim=1, keepdim=True))  # (values, indices): only the values carry a derivative


class Values(nn.Module):
    def forward(self, pair):
        return pair[0]


class Frozen(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 6)

    def forward(self, x):
        with torch.no_grad():
            return self.linear(x)


class Unused(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear, self.spare = nn.Linear(6, 3), nn.Linear(6, 3)

    def forward(self, x):
        return self.linear(x)


@pytest.mark.parametrize(("layers", "message"), [
    (lambda: [Rounded(), nn.Linear(6, 3)], r"module '1' \(Rounded\) applies round, whose derivative is zero"),
    (lambda: [Argmax(), nn.Embedding(6, 3)], r"module '1' \(Argmax\) returns a torch.int64 tensor"),
    (lambda: [Frozen(), nn.Linear(6, 3)], r"module '1.linear' \(Linear\) returns a tensor that does not require grad"),
    (lambda: [Unused()], r"module '1.spare': the loss does not depend on its parameter '1.spare.weight'"),
])
def test_a_network_without_a_hessian_is_refused_naming_the_module(layers, message):
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(4, 6), *layers())
    batch = (torch.randn(8, 4), torch.randint(0, 3, (8,)))
    with pytest.raises(LandscapeError, match=r"the Hessian needs a loss twice differentiable .* but " + message):
        check_differentiable(Objective(network, [batch], summed))
    data = {"train": DataLoader(TensorDataset(*batch), batch_size=4)}
    with pytest.raises(LandscapeError, match=message):  # and through the API, before any point is evaluated
        lp.interpolate(network, network, data, t=[0.0], splits=["train"], accelerator="cpu", progress=False, hessian={"subset": 8})
    maxima = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), MaxWithIndices(), Values(), nn.Linear(1, 3))
    check_differentiable(Objective(maxima, [batch], summed))  # indices beside a differentiable output are fine


def loaders(count: int = 96, features: int = 8) -> dict[str, DataLoader]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(count, features, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return {"train": DataLoader(TensorDataset(x, y), batch_size=32), "test": DataLoader(TensorDataset(x[:40], y[:40]), batch_size=32)}


def bn_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, 2))


def test_a_path_carries_the_curvature_of_each_point_taken_after_batchnorm_is_recomputed(tmp_path):
    data = loaders()
    a, b = bn_net(1), bn_net(2)
    settings = HessianSettings(top_k=2, trace_samples=4, subset=64, seed=3)
    result = lp.interpolate(a, b, data, t=[0.0, 0.5, 1.0], accelerator="cpu", progress=False, hessian=settings)
    assert result.summary["hessian"]["top_k"] == 2
    assert [list(r.extras) for r in result.rows] == [["hessian_eig_1", "hessian_eig_2", "hessian_trace", "hessian_trace_se"]] * 6
    assert all(r.extras == s.extras for r, s in zip(result.rows[::2], result.rows[1::2]))  # the same on both splits
    # t = 0.5 by hand: the midpoint, BatchNorm recomputed on the training data, eval mode, the seeded subset
    middle = bn_net(1)
    with torch.no_grad():
        for p, q, r in zip(middle.state_dict().values(), a.state_dict().values(), b.state_dict().values()):
            if torch.is_floating_point(p):
                p.copy_(0.5 * q + 0.5 * r)
    recompute_batchnorm(middle, data["train"])
    middle.eval()
    objective = Objective(middle, list(training_subset(as_datamodule(data), 64, 3, "subset")), summed)
    generator = torch.Generator().manual_seed(3)
    eigen = top_eigenvalues(objective, 2, 20, 1e-3, generator)
    mean, error = hutchinson_trace(objective, 4, generator)
    numbers = result.rows[2].extras
    assert [numbers["hessian_eig_1"], numbers["hessian_eig_2"]] == pytest.approx(eigen.values, rel=1e-5)
    assert [numbers["hessian_trace"], numbers["hessian_trace_se"]] == pytest.approx([mean, error], rel=1e-5)
    result.save(tmp_path, tensorboard=True)
    header = (tmp_path / "path.csv").read_text().splitlines()[0]
    assert header == "t,split,loss,accuracy,hessian_eig_1,hessian_eig_2,hessian_trace,hessian_trace_se"
    assert PathResult.load(tmp_path).rows == result.rows
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    assert [e.value for e in events.Scalars("interpolate/hessian_eig_1")] == pytest.approx([r.extras["hessian_eig_1"] for r in result.rows[::2]])


def test_planes_and_mli_take_the_same_setting(tmp_path):
    data = loaders()
    nets = [MLP(8, [6], 2) for _ in range(3)]
    grid = lp.plane(networks=nets, data=data, points=2, splits=["test"], accelerator="cpu", progress=False, hessian={"top_k": 1, "subset": 32})
    assert all(r.extras.keys() == {"hessian_eig_1"} for r in grid.rows + grid.anchor_rows)
    grid.save(tmp_path / "plane")
    assert (tmp_path / "plane" / "plane.csv").read_text().splitlines()[0] == "x,y,split,loss,accuracy,hessian_eig_1"
    figure = grid.plot()  # plane.png: a third contour panel, of the top eigenvalue over the grid
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["test: log10 loss", "test: accuracy %", "test: top Hessian eigenvalue"]
    levels = next(c for c in panels[2].collections if hasattr(c, "levels")).levels
    values = [r.extras["hessian_eig_1"] for r in grid.rows]
    assert levels[0] <= min(values) < max(values) <= levels[-1] and levels[-1] - levels[0] < 2 * (max(values) - min(values))
    runs = lp.mli([(nets[0], nets[1])], data, points=2, variants=["all"], splits=["train"], progress=False, accelerator="cpu",
                  hessian={"trace_samples": 2, "top_k": 0, "subset": 32})
    assert all(r.extras.keys() == {"hessian_trace", "hessian_trace_se"} for r in runs.paths[("run0", "all")].rows)


def test_a_path_watched_during_fit_carries_the_curvature(tmp_path):
    from test_callbacks import events, small_fit

    from landscape_pl.callbacks import PathEvaluation

    small_fit(tmp_path, PathEvaluation(every_n_epochs=0, points=2, splits=["test"], hessian={"top_k": 1, "subset": 64}), epochs=1)
    rows = read_path_csv(tmp_path / "path" / "epoch_0001" / "path.csv")
    assert [list(r.extras) for r in rows] == [["hessian_eig_1"]] * 2
    logged = events(tmp_path)
    assert [e.step for e in logged.Images("path/profile")] == [1]  # the figure with its curvature panel
    curve = logged.Scalars("path/epoch_0001/hessian_eig_1")  # each point's curvature, step = grid index
    assert [e.step for e in curve] == [0, 1]
    assert [e.value for e in curve] == pytest.approx([r.extras["hessian_eig_1"] for r in rows], rel=1e-6)


def test_a_string_carries_the_curvature_of_each_bead(tmp_path):
    data = loaders()
    a, b = MLP(8, [6], 2), MLP(8, [6], 2)
    hessian = {"top_k": 1, "trace_samples": 2, "subset": 32}
    string = lp.connect(a, b, data, threshold=100.0, folder=tmp_path / "string", points=5, progress=False, hessian=hessian)
    assert string.summary["beads"] == 0 and string.summary["hessian"]["subset"] == 32
    ends = lp.interpolate(a, b, data, t=[0.0, 1.0], splits=["train"], accelerator="cpu", progress=False, hessian=hessian)
    assert [r.extras for r in string.rows if r.extras] == [r.extras for r in ends.rows]
    assert [bool(r.extras) for r in string.rows] == [True, False, False, False, True]
    string.save(tmp_path / "report")
    assert read_path_csv(tmp_path / "report" / "path.csv") == string.rows
    with pytest.raises(LandscapeError, match="hessian subset=500: the training split has 96 examples"):
        lp.connect(a, b, data, threshold=100.0, folder=tmp_path / "refused", progress=False, hessian={"subset": 500})
    assert not (tmp_path / "refused" / "beads").exists()


def test_the_interpolate_and_curve_commands_write_the_columns(tmp_path):
    ends = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        ends.append(save_network(MLP(in_features=64, widths=[8], num_outputs=10), tmp_path / f"n{seed}.ckpt", "classification"))
    main(["interpolate", "--start", str(ends[0]), "--end", str(ends[1]), "--out", str(tmp_path / "cli"), "--points=3",
          "--data=landscape_pl.data.DigitsDataModule", "--hessian.top_k=1", "--hessian.trace_samples=2", "--hessian.subset=64",
          "--hessian.iterations=30", *QUIET])
    rows = read_path_csv(tmp_path / "cli" / "path.csv")
    assert [list(r.extras) for r in rows] == [["hessian_eig_1", "hessian_trace", "hessian_trace_se"]] * 6
    assert json.loads((tmp_path / "cli" / "summary.json").read_text())["hessian"]["subset"] == 64
    api = lp.interpolate(str(ends[0]), str(ends[1]), t=[-1.0, 0.5, 2.0], accelerator="cpu", progress=False,
                         data=lp.data.DigitsDataModule(), hessian={"top_k": 1, "trace_samples": 2, "subset": 64, "iterations": 30})
    assert api.rows == rows
    ckpt = fit_curve(tmp_path / "curve", ends[0], ends[1], "--trainer.max_epochs=1", "--trainer.limit_train_batches=2")
    main(["curve", "--ckpt", str(ckpt), "--out", str(tmp_path / "curve_cli"), "--points=3", "--hessian.top_k=2",
          "--hessian.subset=32", *QUIET])
    rows = read_path_csv(tmp_path / "curve_cli" / "path.csv")
    assert [list(r.extras) for r in rows] == [["hessian_eig_1", "hessian_eig_2"]] * 6
    assert rows == lp.evaluate_curve(ckpt, points=3, accelerator="cpu", progress=False, hessian={"top_k": 2, "subset": 32}).rows


def test_the_spectrum_of_one_network_through_the_api_and_the_command(tmp_path):
    torch.manual_seed(0)
    path = save_network(MLP(in_features=64, widths=[4], num_outputs=10), tmp_path / "net.ckpt", "classification")
    digits = lp.data.DigitsDataModule()
    result = lp.hessian_spectrum(str(path), digits, vectors=2, steps=30, subset=64, accelerator="cpu")
    grid, density = torch.tensor(result.spectrum.grid), torch.tensor(result.spectrum.density)
    assert float(torch.trapezoid(density, grid)) == pytest.approx(1.0, abs=1e-4)
    assert result.summary["min_node"] < 0 < result.summary["max_node"] and result.summary["parameters"] == 310
    # the largest node is the top eigenvalue a path reports at this network
    top = lp.interpolate(str(path), str(path), digits, t=[0.0], splits=["train"], accelerator="cpu", progress=False,
                         hessian={"top_k": 1, "subset": 64, "iterations": 30, "tolerance": 1e-6}).rows[0].extras["hessian_eig_1"]
    assert result.summary["max_node"] == pytest.approx(top, rel=1e-3)
    main(["hessian", "--ckpt", str(path), "--out", str(tmp_path / "cli"), "--vectors=2", "--steps=30", "--subset=64",
          "--accelerator=cpu", "--data=landscape_pl.data.DigitsDataModule"])
    saved = lp.api.SpectrumResult.load(tmp_path / "cli")
    assert saved.spectrum == result.spectrum and saved.summary == result.summary
    assert (tmp_path / "cli" / "spectrum.csv").read_text().splitlines()[0] == "eigenvalue,density"
    assert (tmp_path / "cli" / "spectrum.png").stat().st_size > 0
    with pytest.raises(LandscapeError, match="steps=400: the network has 310 parameters"):
        lp.hessian_spectrum(str(path), digits, steps=400, subset=64, accelerator="cpu")


def test_bad_hessian_settings_are_refused_before_the_work():
    data = loaders(count=50)
    a, b = MLP(8, [6], 2), MLP(8, [6], 2)
    with pytest.raises(LandscapeError, match=r"hessian subset=256: the training split has 50 examples; ask for 1 to 50"):
        lp.interpolate(a, b, data, t=[0.0, 1.0], accelerator="cpu", progress=False, hessian={"top_k": 1})
    with pytest.raises(LandscapeError, match=r"hessian has unknown keys \['topk'\]; the keys are \['top_k', "):
        lp.interpolate(a, b, data, t=[0.0, 1.0], hessian={"topk": 1})
    with pytest.raises(LandscapeError, match="measures nothing"):
        HessianSettings(top_k=0)
    with pytest.raises(LandscapeError, match=r"top_k=200: the network has 68 parameters"):
        lp.interpolate(a, b, data, t=[0.0], accelerator="cpu", progress=False, hessian={"top_k": 200, "iterations": 200, "subset": 8})


def test_the_command_names_a_subset_larger_than_the_data(tmp_path, capsys):
    torch.manual_seed(0)
    end = save_network(MLP(in_features=64, widths=[8], num_outputs=10), tmp_path / "n.ckpt", "classification")
    with pytest.raises(SystemExit) as stopped:
        main(["interpolate", "--start", str(end), "--end", str(end), "--out", str(tmp_path / "out"), "--points=2",
              "--data=landscape_pl.data.DigitsDataModule", "--hessian.subset=5000", *QUIET])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: hessian subset=5000: the training split has 1438 examples; ask for 1 to 1438")
    assert not (tmp_path / "out").exists()


def test_under_torchrun_every_rank_gets_every_point_with_its_curvature(tmp_path):
    script = DDP_SCRIPT.replace('progress=False)', 'progress=False, hessian={"top_k": 1, "trace_samples": 2, "subset": 32})')
    script = script.replace("r.accuracy]", "r.accuracy, dict(r.extras)]")
    assert script.count("hessian") == 1 and "r.extras" in script
    (tmp_path / "line.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for launcher in (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], []):
        out = tmp_path / ("two" if launcher else "one")
        done = subprocess.run([sys.executable, *launcher, str(tmp_path / "line.py"), str(out)], env=env, capture_output=True, text=True, check=False,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    single = json.loads((tmp_path / "one.rank0.json").read_text())
    assert len(single) == 7 * 2 and all(math.isfinite(row[4]["hessian_eig_1"]) for row in single)
    assert json.loads((tmp_path / "two.rank0.json").read_text()) == single == json.loads((tmp_path / "two.rank1.json").read_text())
