"""The Python API: results on in-memory networks and plain DataLoaders, equal to the commands' files
for the same inputs (same rows to the last digit), ``.save`` writing those files, ``.plot`` a figure."""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.figure
import pytest
import torch
from torch.utils.data import DataLoader

import landscape_pl as lp
from landscape_pl.cli import main
from landscape_pl.data import DigitsDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network, read_path_csv
from landscape_pl.paths.grid import t_grid

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["--accelerator", "cpu", "--progress", "false", "--tensorboard", "false"]


def same_files(one: Path, two: Path, *names: str) -> None:
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def digits_loaders() -> dict[str, DataLoader]:
    """The digits as plain DataLoaders, the same batches DigitsDataModule's evaluation gives."""
    data = DigitsDataModule()
    return {split: DataLoader(data.split(split), batch_size=data.eval_batch_size) for split in ("train", "test")}


def test_interpolate_equals_the_command_and_saves_its_files(digits_endpoints, tmp_path):
    main(["interpolate", "--start", str(digits_endpoints.a), "--end", str(digits_endpoints.b), "--out", str(tmp_path / "cli"),
          "--points", "7", *QUIET])
    result = lp.interpolate(digits_endpoints.a, digits_endpoints.b, t=t_grid(-1, 2, 7), accelerator="cpu", progress=False)
    assert result.rows == read_path_csv(tmp_path / "cli" / "path.csv")
    assert result.summary == json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert result.save(tmp_path / "api") == tmp_path / "api"
    same_files(tmp_path / "cli", tmp_path / "api", "path.csv", "summary.json")
    assert isinstance(result.plot(), matplotlib.figure.Figure)


def test_interpolate_on_modules_and_dataloaders_leaves_the_callers_networks_alone(digits_endpoints):
    a, b = load_network(digits_endpoints.a).network, load_network(digits_endpoints.b).network
    before = copy.deepcopy(a.state_dict())
    ts = [0.0, 0.5, 1.0, 1.5]
    in_memory = lp.interpolate(a, b, digits_loaders(), t=ts, accelerator="cpu", progress=False)
    from_files = lp.interpolate(digits_endpoints.a, digits_endpoints.b, t=ts, accelerator="cpu", progress=False)
    assert [(r.key, r.split, r.loss, r.accuracy) for r in in_memory.rows] == [(r.key, r.split, r.loss, r.accuracy) for r in from_files.rows]
    assert all(torch.equal(before[k], v) for k, v in a.state_dict().items())
    assert in_memory.summary["start"] == "start" and in_memory.summary["train"]["barrier"] == from_files.summary["train"]["barrier"]


def test_mli_variants_equal_the_command(digits_endpoints, tmp_path):
    main(["mli", "--runs", f"[{digits_endpoints.a}]", "--out", str(tmp_path / "cli"), "--points", "5", *QUIET])
    result = lp.mli([digits_endpoints.a], points=5, accelerator="cpu", progress=False)
    assert result.table == json.loads((tmp_path / "cli" / "mli.json").read_text())["table"]
    result.save(tmp_path / "api")
    same_files(tmp_path / "cli", tmp_path / "api", "mli.csv", "mli.md", "mli.json")
    a, b = load_network(digits_endpoints.a_init).network, load_network(digits_endpoints.a).network
    memory = lp.mli([(a, b)], digits_loaders(), points=5, variants=["biases"], accelerator="cpu", progress=False)
    assert [r["plateau_length"] for r in memory.table] == [r["plateau_length"] for r in result.table if r["variant"] == "biases"]


def test_align_equals_the_command_and_returns_a_permuted_network(digits_endpoints, tmp_path):
    main(["align", "--start", str(digits_endpoints.a), "--end", str(digits_endpoints.b), "--out", str(tmp_path / "cli"),
          "--points", "5", *QUIET])
    result = lp.align(digits_endpoints.a, digits_endpoints.b, points=5, accelerator="cpu", progress=False)
    saved = json.loads((tmp_path / "cli" / "permutation.json").read_text())["permutation"]
    assert {name: p.tolist() for name, p in result.permutations.items()} == saved
    report = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert result.report["mean_correlation"] == report["mean_correlation"] and result.report["barrier"] == report["barrier"]
    assert result.lines["aligned"].rows == read_path_csv(tmp_path / "cli" / "aligned" / "path.csv")
    x = torch.randn(32, 64)
    b = load_network(digits_endpoints.b).network.eval()
    torch.testing.assert_close(result.network.eval()(x), b(x), rtol=0, atol=1e-5)  # the same function, units reordered
    result.save(tmp_path / "api")
    same_files(tmp_path / "cli", tmp_path / "api", "permutation.json", "unaligned/path.csv", "aligned/path.csv")


def test_weight_matching_needs_no_data_and_activation_alignment_says_it_does(digits_endpoints):
    a, b = load_network(digits_endpoints.a).network, load_network(digits_endpoints.b).network
    weight = lp.align(a, b, method="weight", accelerator="cpu")
    assert weight.correlations is None and not weight.lines and set(weight.permutations) == {"layers.1"}
    from_files = lp.align(digits_endpoints.a, digits_endpoints.b, method="weight", points=0, accelerator="cpu", progress=False)
    assert all(torch.equal(weight.permutations[k], from_files.permutations[k]) for k in weight.permutations)
    with pytest.raises(LandscapeError, match="activation alignment needs data"):
        lp.align(a, b, method="activation")
    activation = lp.align(a, b, digits_loaders(), points=0, accelerator="cpu", progress=False)
    assert activation.report["mean_correlation"]["after"] > activation.report["mean_correlation"]["before"]


def test_curve_evaluation_and_ensembles_equal_the_commands(digits_endpoints, tmp_path):
    from test_curves import fit_curve

    ckpt = fit_curve(tmp_path / "curve", digits_endpoints.a, digits_endpoints.b, "--trainer.max_epochs=1",
                     "--trainer.limit_train_batches=4")
    main(["curve", "--ckpt", str(ckpt), "--out", str(tmp_path / "cli"), "--points", "5", *QUIET])
    result = lp.evaluate_curve(ckpt, points=5, accelerator="cpu", progress=False)
    assert result.rows == read_path_csv(tmp_path / "cli" / "path.csv")
    result.save(tmp_path / "api")
    same_files(tmp_path / "cli", tmp_path / "api", "path.csv", "summary.json")
    main(["curve-ensembles", "--ckpt", str(ckpt), "--out", str(tmp_path / "ens"), "--independent",
          f"[{digits_endpoints.a}, {digits_endpoints.b}]", "--accelerator", "cpu"])
    ensembles = lp.curve_ensembles(ckpt, independent=[digits_endpoints.a, digits_endpoints.b], accelerator="cpu")
    with (tmp_path / "ens" / "ensembles.csv").open() as handle:
        assert [{k: str(v) for k, v in row.items()} for row in ensembles.rows] == list(csv.DictReader(handle))
    middle = lp.curve_point(ckpt, 0.5, accelerator="cpu")
    at_half = [r for r in lp.evaluate_curve(ckpt, t=[0.5], splits=["test"], accelerator="cpu", progress=False).rows]
    assert isinstance(middle, torch.nn.Module) and at_half[0].key == 0.5


def test_plane_equals_the_command(digits_endpoints, tmp_path):
    networks = [digits_endpoints.a, digits_endpoints.b, digits_endpoints.a_init]
    main(["plane", "--networks", f"[{', '.join(map(str, networks))}]", "--out", str(tmp_path / "cli"), "--points", "3",
          "--splits", "[test]", *QUIET])
    result = lp.plane(networks=networks, points=3, splits=["test"], accelerator="cpu", progress=False)
    result.save(tmp_path / "api")
    same_files(tmp_path / "cli", tmp_path / "api", "plane.csv", "plane.json")
    modules = [load_network(n).network for n in networks]
    memory = lp.plane(networks=modules, data=digits_loaders(), points=3, splits=["test"], accelerator="cpu", progress=False)
    assert [(r.key, r.loss) for r in memory.rows] == [(r.key, r.loss) for r in result.rows]


def test_data_errors_name_what_to_pass(digits_endpoints):
    a = load_network(digits_endpoints.a).network
    with pytest.raises(LandscapeError, match="data is needed for networks given in memory"):
        lp.interpolate(a, a)
    only_train = {"train": digits_loaders()["train"]}
    with pytest.raises(LandscapeError, match="no test DataLoader was given"):
        lp.interpolate(a, a, only_train, t=[0.0, 1.0])
    with pytest.raises(LandscapeError, match="must be an nn.Module or a checkpoint path"):
        lp.interpolate(3, a, only_train)


DDP_SCRIPT = """
import json, sys
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset
import landscape_pl as lp
from landscape_pl.models import MLP

torch.manual_seed(0)
x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
data = {split: DataLoader(TensorDataset(x, y), batch_size=16) for split in ("train", "test")}
a, b = MLP(8, [16], 3), MLP(8, [16], 3)
result = lp.interpolate(a, b, data, t=[i / 6 for i in range(7)], accelerator="cpu", progress=False)
rank = dist.get_rank() if dist.is_initialized() else 0
with open(sys.argv[1] + f".rank{rank}.json", "w") as handle:
    json.dump([[r.key, r.split, r.loss, r.accuracy] for r in result.rows], handle)
if dist.is_initialized():
    dist.destroy_process_group()  # a gloo group left up at exit can abort the process
"""


def test_under_torchrun_the_api_splits_the_grid_and_every_rank_gets_every_row(tmp_path):
    script = tmp_path / "line.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for launcher in (["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"], []):
        out = tmp_path / ("two" if launcher else "one")
        done = subprocess.run([sys.executable, *launcher, str(script), str(out)], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    single = json.loads((tmp_path / "one.rank0.json").read_text())
    assert len(single) == 7 * 2
    assert json.loads((tmp_path / "two.rank0.json").read_text()) == single == json.loads((tmp_path / "two.rank1.json").read_text())


def test_fixups_run_at_every_point_after_the_point_is_written(digits_endpoints):
    """A per-point fix-up is prepared once per walk and applied at each t; what it does shows in the rows."""
    import math

    class ZeroOutput:
        def __init__(self) -> None:
            self.prepared, self.keys = 0, []

        def prepare(self, network: torch.nn.Module, path) -> None:
            self.prepared += 1

        def apply(self, network: torch.nn.Module, key: float) -> None:
            self.keys.append(key)
            with torch.no_grad():
                for p in network.layers[-1].parameters():
                    p.zero_()  # every class equally likely: the loss is log 10 whatever θ(t) is

    fixup = ZeroOutput()
    result = lp.interpolate(digits_endpoints.a, digits_endpoints.b, t=[0.0, 0.5, 1.0], splits=["test"], fixups=[fixup],
                            accelerator="cpu", progress=False)
    assert fixup.prepared == 1 and fixup.keys == [0.0, 0.5, 1.0]
    assert [r.loss for r in result.rows] == pytest.approx([math.log(10)] * 3, abs=1e-6)


def test_save_onto_an_existing_file_says_so(digits_endpoints, tmp_path):
    result = lp.interpolate(digits_endpoints.a, digits_endpoints.b, t=[0.0, 1.0], splits=["test"], accelerator="cpu", progress=False)
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(LandscapeError, match="taken is an existing file"):
        result.save(tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "mine"
