"""Dynamic String Sampling end to end: regressions connect, the symmetric copy of appendix D does not,
strings resume exactly, beads are ordinary checkpoints, bad input is refused with a clear message."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from landscape_pl.analysis.strings import arc_positions, normalized_length, principal_axes, project, segment_maxima
from landscape_pl.cli import main
from landscape_pl.data import CyclicPermutationDataModule, PolynomialDataModule
from landscape_pl.io import load_network, read_path_csv, save_network
from landscape_pl.models import MLP
from landscape_pl.modules.endpoint import reinitialize
from landscape_pl.search import CONNECTED, NOT_CONNECTED, string_penalty
from landscape_pl.search.probe import Probe
from landscape_pl.search.training import train_bead

CYCLIC = "landscape_pl.data.CyclicPermutationDataModule"
QUADRATIC = json.dumps({"class_path": "landscape_pl.data.PolynomialDataModule", "init_args": {"polynomial": "quadratic"}})
ADAM = lambda lr: json.dumps({"class_path": "torch.optim.Adam", "init_args": {"lr": lr}})  # noqa: E731


def trained(network, datamodule, target: float, steps: int, seed: int, root: Path, lr: float = 0.05):
    """Train ``network`` in place to ``target`` with the bead trainer (fast, deterministic)."""
    probe = Probe(datamodule, "train", type(network)(**network._spec["init_args"]), [0.0, 1.0])
    _, loss = train_bead(network, datamodule, "regression", lambda p: torch.optim.Adam(p, lr=lr), probe.loss, target, steps, 20, seed, root, "cpu")
    assert loss < target, f"fixture did not train: {loss}"
    return network


def connect(*args: str, **options) -> dict:
    """Run ``python -m landscape_pl connect`` in-process; return summary.json."""
    argv = ["connect", *args, "--progress", "false", "--tensorboard", str(options.pop("tensorboard", False)).lower()]
    argv += [f"--{k}={v}" for k, v in options.items()]
    main(argv)
    out = Path(argv[argv.index("--out") + 1])
    return json.loads((out / "summary.json").read_text())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- appendix D: a 2-3-2 ReLU net with 12 parameters (no biases) and its copy with two neurons swapped ----
@pytest.fixture(scope="module")
def cyclic(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cyclic")
    data = CyclicPermutationDataModule()
    base = MLP(2, [3], 2, "relu", bias=False)
    reinitialize(base, 0)
    trained(base, data, 3e-5, 600, 0, root)
    state = base.state_dict()
    swap = torch.tensor([1, 0, 2])
    swapped = MLP(2, [3], 2, "relu", bias=False)
    swapped.load_state_dict({"layers.1.weight": state["layers.1.weight"][swap], "layers.3.weight": state["layers.3.weight"][:, swap]})
    perturbed = MLP(2, [3], 2, "relu", bias=False)
    generator = torch.Generator().manual_seed(1)
    perturbed.load_state_dict({k: v + 0.05 * torch.randn(v.shape, generator=generator) for k, v in state.items()})
    trained(perturbed, data, 3e-5, 600, 1, root)
    files = {name: save_network(net, root / f"{name}.ckpt", "regression") for name, net in
             (("base", base), ("swapped", swapped), ("perturbed", perturbed))}
    return files | {"root": root}


CYCLIC_ARGS = ["--threshold", "1e-3", "--data", CYCLIC, "--optimizer", ADAM(0.05), "--bead_steps", "300", "--check_every", "20"]


def test_swapped_neurons_are_not_connected_within_budget(cyclic):
    out = cyclic["root"] / "swapped_string"
    summary = connect("--start", str(cyclic["base"]), "--end", str(cyclic["swapped"]), "--out", str(out), *CYCLIC_ARGS, max_beads=4)
    assert summary["verdict"] == NOT_CONNECTED
    # the bead at the symmetric midpoint keeps the two neurons tied and cannot fit the map
    assert "stayed above L0" in summary["reason"]
    assert max(summary["segment_max_loss"]) > 0.1


def test_step_budget_is_named_when_it_stops_a_bead(cyclic):
    out = cyclic["root"] / "step_budget"
    summary = connect("--start", str(cyclic["base"]), "--end", str(cyclic["swapped"]), "--out", str(out), *CYCLIC_ARGS, max_steps=40)
    assert summary["verdict"] == NOT_CONNECTED
    assert summary["training_steps"] == 40
    assert summary["reason"].endswith("after 40 steps (training step budget spent (40 steps))")


def test_constrained_variant_stops_when_its_step_budget_is_spent(cyclic):
    out = cyclic["root"] / "constrained_step_budget"
    summary = connect("--start", str(cyclic["base"]), "--end", str(cyclic["swapped"]), "--out", str(out), *CYCLIC_ARGS,
                      algorithm="constrained", bead_steps=30, check_every=10, max_steps=30, max_rounds=6)
    assert summary["verdict"] == NOT_CONNECTED
    assert summary["reason"] == "training step budget spent (30 steps)" and summary["training_steps"] == 30
    assert json.loads((out / "string.json").read_text())["progress"]["rounds"] == 1  # no empty rounds after the budget


def test_end_permutation_is_the_explicit_swap(cyclic, capsys):
    out = cyclic["root"] / "permuted"
    error_of(capsys, "--start", str(cyclic["base"]), "--end_permutation", '{"layers.1": [1, 0, 2]}', "--threshold", "1e-9",
             "--data", CYCLIC, "--out", str(out))  # stops at the ends-above-L0 check, after writing the permuted end
    permuted = load_network(out / "ends" / "permuted.ckpt").network.state_dict()
    swapped = load_network(cyclic["swapped"]).network.state_dict()
    assert all(torch.equal(permuted[k], swapped[k]) for k in swapped)


def test_perturbed_retrained_copy_connects(cyclic):
    out = cyclic["root"] / "perturbed_string"
    summary = connect("--start", str(cyclic["base"]), "--end", str(cyclic["perturbed"]), "--out", str(out), *CYCLIC_ARGS, max_beads=4)
    assert summary["verdict"] == CONNECTED
    assert summary["reason"] is None
    assert max(summary["segment_max_loss"]) <= 1e-3
    assert summary["normalized_length"] >= 1.0


# -- section 4.1: quadratic regression with a 1-4-4-1 sigmoid MLP ---------------------------------------
@pytest.fixture(scope="module")
def quadratic(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("quadratic")
    data = PolynomialDataModule("quadratic")
    ends = {}
    for seed in (1, 3):
        net = MLP(1, [4, 4], 1, "sigmoid")
        reinitialize(net, seed)
        ends[seed] = save_network(trained(net, data, 1e-3, 800, seed, root), root / f"end{seed}.ckpt", "regression")
    return {"start": ends[1], "end": ends[3], "root": root}


QUADRATIC_ARGS = ["--data", QUADRATIC, "--optimizer", ADAM(0.01), "--bead_steps", "300", "--check_every", "10", "--train_ends", "true"]
LOW = 2e-3


@pytest.fixture(scope="module")
def low_string(quadratic) -> tuple[Path, dict]:
    out = quadratic["root"] / "low"
    summary = connect("--start", str(quadratic["start"]), "--end", str(quadratic["end"]), "--out", str(out),
                      "--threshold", str(LOW), *QUADRATIC_ARGS, tensorboard=True)
    return out, summary


def test_quadratic_connects_and_reports(low_string):
    out, summary = low_string
    assert summary["verdict"] == CONNECTED
    assert summary["beads"] >= 1
    assert summary["beads"] == len(summary["bead_files"]) - 2
    assert all(m <= LOW for m in summary["segment_max_loss"])
    assert len(summary["segment_max_loss"]) == summary["beads"] + 1
    index = json.loads((out / "string.json").read_text())
    assert [str(out / b["file"]) for b in index["beads"]] == summary["bead_files"]
    assert all(b["loss"] <= LOW for b in index["beads"])
    # the normalized length is recomputed from the bead checkpoints themselves
    from landscape_pl.paths import Anchors

    matrix = Anchors([load_network(f).network.state_dict() for f in summary["bead_files"]]).matrix
    assert summary["normalized_length"] == pytest.approx(normalized_length(matrix), rel=1e-9)
    rows = read_path_csv(out / "path.csv")
    assert rows[0].key == 0.0 and rows[-1].key == pytest.approx(1.0)
    assert max(r.loss for r in rows) == pytest.approx(max(summary["segment_max_loss"]))
    assert (out / "pca.png").stat().st_size > 0 and (out / "path.png").stat().st_size > 0


def test_tensorboard_has_a_snapshot_per_depth(low_string):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, summary = low_string
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0}).Reload()
    depths = [e.step for e in events.Scalars("string/beads")]
    assert depths == list(range(summary["depth"] + 1))
    assert events.Scalars("string/beads")[-1].value == summary["beads"]
    assert events.Scalars("string/beads")[0].value == 0
    assert [e.step for e in events.Images("string/pca")] == depths
    assert [e.step for e in events.Images("string/profile")] == depths


def test_interrupted_string_resumes_with_the_same_beads(quadratic, low_string):
    out = quadratic["root"] / "resumed"
    args = ["--start", str(quadratic["start"]), "--end", str(quadratic["end"]), "--out", str(out), "--threshold", str(LOW), *QUADRATIC_ARGS]
    first = connect(*args, max_beads=1)
    assert first["verdict"] == NOT_CONNECTED and first["reason"].startswith("bead budget spent")
    before = {f: digest(Path(f)) for f in first["bead_files"]}
    resumed = connect(*args)
    assert {f: digest(Path(f)) for f in before} == before  # beads so far reused, not retrained
    assert set(before) < set(resumed["bead_files"])
    # and the resumed string is exactly the uninterrupted one
    _, uninterrupted = low_string
    assert resumed["bead_losses"] == uninterrupted["bead_losses"]
    assert resumed["normalized_length"] == uninterrupted["normalized_length"]


def test_resume_refuses_other_settings(quadratic, low_string):
    out, _ = low_string
    with pytest.raises(SystemExit) as exit_info:
        main(["connect", "--start", str(quadratic["start"]), "--end", str(quadratic["end"]), "--out", str(out),
              "--threshold", "0.5", "--data", QUADRATIC, "--progress", "false"])
    assert exit_info.value.code == 2


def test_beads_load_in_validate_and_interpolate(low_string, tmp_path, capsys):
    out, summary = low_string
    bead = Path(summary["bead_files"][1])
    index = json.loads((out / "string.json").read_text())
    main(["interpolate", "--start", str(bead), "--end", summary["bead_files"][2], "--data", QUADRATIC, "--t_min", "0",
          "--t_max", "1", "--points", "3", "--out", str(tmp_path / "line"), "--tensorboard", "false", "--progress", "false"])
    rows = [r for r in read_path_csv(tmp_path / "line" / "path.csv") if r.split == "train"]
    assert rows[0].loss == pytest.approx(index["beads"][1]["loss"], rel=1e-6)
    main(["validate", "--ckpt_path", str(bead), "--data", QUADRATIC, "--trainer.logger=false", "--trainer.enable_progress_bar=false"])
    assert "val/loss" in capsys.readouterr().out


def test_sweep_bead_count_grows_as_threshold_falls(quadratic):
    out = quadratic["root"] / "sweep"
    main(["sweep", "--thresholds", "[0.05, 0.002]", "--pairs", json.dumps([[str(quadratic["start"]), str(quadratic["end"])]]),
          "--data", QUADRATIC, "--optimizer", ADAM(0.01), "--options", json.dumps({"bead_steps": 300, "tensorboard": False}),
          "--out", str(out), "--progress", "false"])
    with (out / "sweep.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [float(r["threshold"]) for r in table] == [0.05, 0.002]
    assert [float(r["connected_share"]) for r in table] == [1.0, 1.0]
    high, low = (float(r["mean_beads"]) for r in table)
    assert high < low
    assert float(table[0]["mean_normalized_length"]) <= float(table[1]["mean_normalized_length"])
    assert (out / "sweep.png").stat().st_size > 0
    assert len(list(csv.DictReader((out / "runs.csv").open()))) == 2


def test_constrained_variant_connects(quadratic):
    out = quadratic["root"] / "constrained"
    summary = connect("--start", str(quadratic["start"]), "--end", str(quadratic["end"]), "--out", str(out), "--threshold", str(LOW),
                      *QUADRATIC_ARGS, algorithm="constrained", zeta=1e-4, kappa=1e-4, bead_steps=100, max_rounds=10)
    assert summary["verdict"] == CONNECTED
    assert all(m <= LOW for m in summary["segment_max_loss"])
    index = json.loads((out / "string.json").read_text())
    assert summary["beads"] >= 1 and index["progress"]["rounds"] >= 1
    assert index["progress"]["phase"] == "insert"  # stopped after a training round, at the check


# -- bad input ---------------------------------------------------------------------------------------------
def error_of(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["connect", "--progress", "false", *argv])
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_ends_above_threshold_are_refused_with_an_offer_to_train(cyclic, capsys):
    err = error_of(capsys, "--start", str(cyclic["base"]), "--end", str(cyclic["swapped"]), "--threshold", "1e-9", "--data", CYCLIC,
                   "--out", str(cyclic["root"] / "too_low"))
    assert "above threshold L0=1e-09" in err and "--train_ends true" in err and "base.ckpt" in err


def test_ends_of_different_architectures_are_refused(cyclic, capsys):
    other = save_network(MLP(2, [4], 2, "relu", bias=False), cyclic["root"] / "wide.ckpt", "regression")
    err = error_of(capsys, "--start", str(cyclic["base"]), "--end", str(other), "--threshold", "1", "--data", CYCLIC,
                   "--out", str(cyclic["root"] / "mixed"))
    assert "different architectures" in err and "wide.ckpt" in err


def test_identical_ends_are_refused(cyclic, capsys):
    err = error_of(capsys, "--start", str(cyclic["base"]), "--end", str(cyclic["base"]), "--threshold", "1", "--data", CYCLIC,
                   "--out", str(cyclic["root"] / "same"))
    assert "are the same network" in err


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--threshold", "0", "threshold=0.0"), ("--threshold", "-1", "threshold=-1.0"),
    ("--max_beads", "0", "max_beads=0"), ("--max_steps", "0", "max_steps=0"), ("--max_depth", "0", "max_depth=0"),
    ("--alpha", "1.5", "alpha=1.5"),
    ("--alpha", "1.0", "alpha=1.0"),
])
def test_bad_settings_are_refused(cyclic, capsys, option, value, message):
    argv = ["--start", str(cyclic["base"]), "--end", str(cyclic["perturbed"]), "--data", CYCLIC, "--out", str(cyclic["root"] / "bad")]
    argv += ["--threshold", "1"] if option != "--threshold" else []
    err = error_of(capsys, *argv, option, value)
    assert message in err
    assert not (cyclic["root"] / "bad" / "string.json").exists()


# -- the pure parts ----------------------------------------------------------------------------------------
def test_string_metrics():
    beads = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    assert normalized_length(beads) == pytest.approx(math.sqrt(2), rel=1e-12)
    assert normalized_length(beads[[0, 2]]) == 1.0
    assert segment_maxima([[0.1, 0.5, 0.2], [0.3, 0.1]]) == [0.5, 0.3]
    assert sum(arc_positions(beads, [0.0, 0.5, 1.0]), []) == pytest.approx([0.0, 0.25, 0.5, 0.5, 0.75, 1.0])
    mean, axes = principal_axes(beads, 3)
    coords = project(beads, mean, axes)
    assert coords.shape == (3, 3)
    # centred points (-1, -1/3), (0, 2/3), (1, -1/3): more variance along x than y, no covariance
    assert coords[:, 0].abs().tolist() == pytest.approx([1.0, 0.0, 1.0], abs=1e-12)
    assert coords[:, 1].abs().tolist() == pytest.approx([1 / 3, 2 / 3, 1 / 3], abs=1e-12)
    assert coords[:, 2].abs().max() == 0.0  # three points span two axes; the third is padding


def test_string_penalty_spring_and_hyperplane():
    previous, following = torch.tensor([0.0, 0.0]), torch.tensor([2.0, 0.0])
    on_plane = torch.tensor([1.0, 3.0])  # equidistant from both neighbours
    assert string_penalty(on_plane, previous, following, 0.0, 1.0).item() == pytest.approx(0.0, abs=1e-12)
    assert string_penalty(on_plane, previous, following, 1.0, 0.0).item() == pytest.approx(2 * math.sqrt(10))
    off_plane = torch.tensor([2.0, 1.0])  # 45 degrees off the bisecting hyperplane's normal
    assert string_penalty(off_plane, previous, following, 0.0, 2.0).item() == pytest.approx(2 * math.sqrt(0.5))
