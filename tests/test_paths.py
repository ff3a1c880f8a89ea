"""Straight lines between trained endpoints: exact ends, BatchNorm recomputation, selections, bad input."""

from __future__ import annotations

import copy
import json
import math
from itertools import islice

import numpy as np
import pytest
import torch
from torch.optim.swa_utils import update_bn

from landscape_pl.analysis import plateau_length, summarize_profile
from landscape_pl.cli import LandscapeCLI, main, model_from_checkpoint
from landscape_pl.data import DigitsDataModule
from landscape_pl.io import load_network, read_path_csv, save_network
from landscape_pl.paths import Evaluation, Row, evaluate, line, recompute_batchnorm
from landscape_pl.reporting import path_summary
from landscape_pl.tasks import get_task

DIGITS = "landscape_pl.data.DigitsDataModule"


def validate(ckpt, *extra: str) -> dict[str, float]:
    """The numbers ``validate --ckpt_path`` logs, run as the CLI runs it."""
    cli = LandscapeCLI(args=model_from_checkpoint(
        ["validate", "--ckpt_path", str(ckpt), "--trainer.enable_progress_bar=false", "--trainer.logger=false", *extra]))
    return {k: float(v) for k, v in cli.trainer.callback_metrics.items()}


def interpolate(capsys, start, end, out, *extra: str) -> tuple[list, dict]:
    main(["interpolate", "--start", str(start), "--end", str(end), "--out", str(out), "--progress=false", *extra])
    capsys.readouterr()
    return read_path_csv(out / "path.csv"), json.loads((out / "summary.json").read_text())


def rows_at(rows, t: float, split: str):
    (row,) = [r for r in rows if r.key == t and r.split == split]
    return row


def test_line_ends_reproduce_validate(digits_endpoints, tmp_path, capsys):
    e = digits_endpoints
    rows, summary = interpolate(capsys, e.a, e.b, tmp_path, "--t_min=0", "--t_max=1", "--points=3")
    assert [(r.key, r.split) for r in rows] == [(t, s) for t in (0.0, 0.5, 1.0) for s in ("train", "test")]
    for t, ckpt in ((0.0, e.a), (1.0, e.b)):
        logged = validate(ckpt, "--data", DIGITS, "--data.init_args.flatten=true")
        row = rows_at(rows, t, "test")
        assert row.loss == pytest.approx(logged["val/loss"], rel=1e-6)
        assert row.accuracy == pytest.approx(logged["val/accuracy"], abs=1e-7)
    assert summary["test"]["loss_start"] == rows_at(rows, 0.0, "test").loss
    assert summary["start"].endswith("last.ckpt") and summary["move"] == "all"
    for name in ("path.csv", "summary.json", "path.png"):
        assert (tmp_path / name).stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    for split in ("train", "test"):  # the file's numbers, as scalars: headline at step 0, profile by grid index
        assert events.Scalars(f"interpolate/{split}/barrier")[0].value == pytest.approx(summary[split]["barrier"], rel=1e-6)
        assert [e.value for e in events.Scalars(f"interpolate/{split}/loss")] == pytest.approx(
            [r.loss for r in rows if r.split == split], rel=1e-6)
    assert events.Tags()["images"] == ["interpolate/profile"]


def test_bn_line_ends_reproduce_validate_without_recomputation(digits_bn_endpoints, tmp_path, capsys):
    e = digits_bn_endpoints
    rows, _ = interpolate(capsys, e.a, e.b, tmp_path, "--t_min=0", "--t_max=1", "--points=2", "--bn_batches=0", "--splits=[test]")
    for t, ckpt in ((0.0, e.a), (1.0, e.b)):
        logged = validate(ckpt, "--data", DIGITS, "--data.init_args.flatten=false")
        assert rows_at(rows, t, "test").loss == pytest.approx(logged["val/loss"], rel=1e-6)
        assert rows_at(rows, t, "test").accuracy == pytest.approx(logged["val/accuracy"], abs=1e-7)


@pytest.mark.parametrize("num_batches", [None, 3])
def test_recompute_batchnorm_equals_update_bn(digits_bn_endpoints, num_batches):
    network = load_network(digits_bn_endpoints.a).network
    reference = copy.deepcopy(network)
    loader = DigitsDataModule(flatten=False, eval_batch_size=100).eval_dataloader("train")
    network.eval()
    recompute_batchnorm(network, loader, num_batches)
    update_bn(loader if num_batches is None else list(islice(loader, num_batches)), reference)
    assert not network.training  # the mode is restored
    buffers = dict(reference.named_buffers())
    for name, value in network.named_buffers():
        assert torch.equal(value, buffers[name]), name
    assert [m.momentum for m in network.modules() if hasattr(m, "momentum")] == [0.1] * 3


def test_interpolate_recomputes_batchnorm_at_every_t(digits_bn_endpoints, tmp_path, capsys):
    """The midpoint row equals: average the weights, update_bn over the training data, evaluate."""
    e = digits_bn_endpoints
    rows, _ = interpolate(capsys, e.a, e.b, tmp_path, "--t_min=0", "--t_max=1", "--points=3")
    a, b = load_network(e.a).network, load_network(e.b).network
    sd_b = b.state_dict()
    midpoint = {k: (v + sd_b[k]) / 2 if v.is_floating_point() else v for k, v in a.state_dict().items()}
    a.load_state_dict(midpoint)
    data = DigitsDataModule(flatten=False)
    update_bn(data.eval_dataloader("train"), a)
    for split in ("train", "test"):
        loss, accuracy = evaluate(a, data.eval_dataloader(split), get_task("classification"))
        assert rows_at(rows, 0.5, split).loss == pytest.approx(loss, rel=1e-6)
        assert rows_at(rows, 0.5, split).accuracy == accuracy


def states(endpoints):
    a, b = load_network(endpoints.a).network, load_network(endpoints.b).network
    return a.state_dict(), b.state_dict(), [n for n, _ in a.named_parameters()]


@pytest.mark.parametrize("t", [-1.0, 0.3, 2.5])
def test_weights_only_leaves_biases_untouched(digits_endpoints, t):
    sd_a, sd_b, names = states(digits_endpoints)
    path = line(sd_a, sd_b, names, move="weights")
    point = path.anchors.unflatten(path.point(t))
    for name in sd_a:
        if name.endswith("bias"):
            assert torch.equal(point[name], sd_a[name]), name
        else:
            assert torch.allclose(point[name], (1 - t) * sd_a[name] + t * sd_b[name], rtol=1e-6, atol=1e-7), name
            assert not torch.equal(point[name], sd_a[name])


@pytest.mark.parametrize("hold", ["start", "end"])
def test_biases_only_leaves_weights_at_the_held_end(digits_endpoints, hold):
    sd_a, sd_b, names = states(digits_endpoints)
    held = sd_a if hold == "start" else sd_b
    point = line(sd_a, sd_b, names, move="biases", hold=hold).anchors.unflatten(
        line(sd_a, sd_b, names, move="biases", hold=hold).point(0.25))
    for name in sd_a:
        if name.endswith("weight"):
            assert torch.equal(point[name], held[name]), name
        else:
            assert torch.allclose(point[name], 0.75 * sd_a[name] + 0.25 * sd_b[name], rtol=1e-6, atol=1e-7)


def test_regex_selection_moves_only_matching_entries(digits_bn_endpoints):
    sd_a, sd_b, names = states(digits_bn_endpoints)
    path = line(sd_a, sd_b, names, move=r"^layers\.1\.")  # the first BatchNorm: weight, bias and statistics
    point = path.anchors.unflatten(path.point(1.0))
    moved = [n for n in point if not torch.equal(point[n], sd_a[n])]
    assert moved == ["layers.1.weight", "layers.1.bias", "layers.1.running_mean", "layers.1.running_var"]
    assert all(torch.equal(point[n], sd_b[n]) for n in moved)


@pytest.mark.parametrize("t", [-1.0, -0.25, 1.5, 3.0])
def test_extrapolation_follows_the_formula(digits_bn_endpoints, t):
    sd_a, sd_b, names = states(digits_bn_endpoints)
    point = line(sd_a, sd_b, names).anchors.unflatten(line(sd_a, sd_b, names).point(t))
    for name, value in point.items():
        expected = (1 - t) * sd_a[name].double() + t * sd_b[name].double()
        assert torch.allclose(value.double(), expected, rtol=1e-6, atol=1e-6), name


def test_line_through_cli_extrapolates_with_the_formula(digits_endpoints, tmp_path, capsys):
    """t = -1 and t = 2 in path.csv are the losses of networks built by the formula."""
    e = digits_endpoints
    rows, summary = interpolate(capsys, e.a, e.b, tmp_path, "--t_min=-1", "--t_max=2", "--points=4", "--splits=[test]")
    sd_a, sd_b, _ = states(e)
    network = load_network(e.a).network
    data = DigitsDataModule()
    for t in (-1.0, 2.0):
        network.load_state_dict({k: (1 - t) * sd_a[k] + t * sd_b[k] for k in sd_a})
        loss, accuracy = evaluate(network, data.eval_dataloader("test"), get_task("classification"))
        assert rows_at(rows, t, "test").loss == pytest.approx(loss, rel=1e-5)
    assert summary["test"]["points"] == 4


def test_evaluation_at_matches_evaluate(digits_endpoints):
    network = load_network(digits_endpoints.a).network
    data = DigitsDataModule()
    evaluation = Evaluation({"test": data.eval_dataloader("test")}, get_task("classification"), progress=False)
    (row,) = evaluation.at(network, 0.0)
    assert (row.loss, row.accuracy) == evaluate(network, data.eval_dataloader("test"), get_task("classification"))


def test_nonfinite_losses_are_marked(digits_endpoints, tmp_path, capsys):
    """Weights near float32's limit at the end: every t > 0 overflows; the CSV spells nan and the summary lists them."""
    loaded = load_network(digits_endpoints.a)
    with torch.no_grad():
        loaded.network.layers[1].weight.fill_(3e38)
    broken = save_network(loaded.network, tmp_path / "broken.ckpt", "classification")
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="non-finite loss"):
        rows, summary = interpolate(capsys, digits_endpoints.a, broken, out, "--t_min=0", "--t_max=1", "--points=5",
                                    "--data", DIGITS, "--splits=[test]")
    text = (out / "path.csv").read_text().splitlines()
    assert text[1].startswith("0.0,test,") and "nan" not in text[1]
    assert text[0] == "t,split,loss,accuracy"
    assert all(line.endswith(",test,nan,nan") for line in text[2:]), text  # no accuracy from overflowed logits
    assert summary["test"]["nonfinite_t"] == [0.25, 0.5, 0.75, 1.0]
    assert "barrier" not in summary["test"] and "note" in summary["test"]


def test_huge_extrapolation_is_marked_not_averaged(digits_endpoints, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="non-finite loss"):
        rows, summary = interpolate(capsys, digits_endpoints.a, digits_endpoints.b, out, "--t_min=-1e37",
                                    "--t_max=1e37", "--points=3", "--splits=[test]")
    assert [r.finite for r in rows] == [False, True, False]
    assert summary["test"]["nonfinite_t"] == [-1e37, 1e37]


def run_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_grid_with_fewer_than_two_points_is_refused(digits_endpoints, tmp_path, capsys):
    err = run_error(capsys, ["interpolate", "--start", str(digits_endpoints.a), "--end", str(digits_endpoints.b),
                             "--out", str(tmp_path), "--points=1"])
    assert "points=1" in err and "at least 2" in err
    assert not (tmp_path / "path.csv").exists()


def test_different_architectures_name_the_first_difference(digits_endpoints, tmp_path, capsys):
    from landscape_pl.models import MLP

    other = save_network(MLP(64, (32,), 10), tmp_path / "narrow.ckpt", "classification")
    err = run_error(capsys, ["interpolate", "--start", str(digits_endpoints.a), "--end", str(other),
                             "--out", str(tmp_path / "out"), "--data", DIGITS])
    assert "different architectures" in err and "layers.1.weight (128, 64) vs layers.1.weight (32, 64)" in err


def test_missing_and_corrupt_checkpoints_name_the_file(digits_endpoints, tmp_path, capsys):
    missing = tmp_path / "nowhere.ckpt"
    err = run_error(capsys, ["interpolate", "--start", str(missing), "--end", str(digits_endpoints.b), "--out", str(tmp_path)])
    assert str(missing) in err and "does not exist" in err
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"this is not a checkpoint")
    err = run_error(capsys, ["interpolate", "--start", str(digits_endpoints.a), "--end", str(corrupt), "--out", str(tmp_path)])
    assert str(corrupt) in err and "corrupt" in err


# A profile with known answers: chord from L(0)=1 to L(1)=0.4 is 1 - 0.6 t; the bump at t=0.25 is 2 - 0.85.
TS = [-0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5]
LOSSES = [3.0, 1.0, 2.0, 0.5, 0.8, 0.4, 5.0]
ACCURACIES = [0.1, 0.9, 0.5, 0.95, 0.9, 0.97, 0.2]


def test_profile_summary_known_answers():
    summary = summarize_profile(TS, LOSSES, ACCURACIES)
    lists = {"nonfinite_t": [], "local_minima_t": [0.0, 0.5, 1.0]}
    scalars = {
        "points": 7, "loss_start": 1.0, "loss_end": 0.4, "barrier": 1.15, "max_loss_0_1": 2.0,
        "monotonic": False, "first_increase_t": 0.25, "min_accuracy_0_1": 0.5, "mean_accuracy_0_1": 0.844,
    }
    assert set(summary) == set(lists) | set(scalars)
    assert {key: summary[key] for key in lists} == lists  # pytest 9.2's approx refuses dicts holding lists
    assert {key: summary[key] for key in scalars} == pytest.approx(scalars)


def test_profile_monotonic_plateau_and_regression():
    ts, losses = [0.0, 0.25, 0.5, 0.75, 1.0], [2.0, 2.0, 1.99, 1.0, 0.1]
    summary = summarize_profile(ts, losses, [None] * 5)
    assert summary["monotonic"] is True and summary["first_increase_t"] is None and summary["local_minima_t"] == []
    assert summary["barrier"] == pytest.approx(1.99 - 1.05) and "min_accuracy_0_1" not in summary  # chord 2 - 1.9 t
    assert plateau_length(np.array(ts), np.array(losses), 0.05) == 0.5
    assert summarize_profile(ts, [2.0, 2.0, 2.01, 1.0, 0.1], [None] * 5, mli_tolerance=0.02)["monotonic"] is True
    assert summarize_profile(ts, [2.0, 2.0, 2.01, 1.0, 0.1], [None] * 5)["first_increase_t"] == 0.5


def test_profile_nonfinite_points_are_listed_not_used():
    losses = [3.0, 1.0, math.nan, 0.5, 0.8, 0.4, math.inf]
    summary = summarize_profile(TS, losses, ACCURACIES)
    assert summary["nonfinite_t"] == [0.25, 1.5]
    assert summary["barrier"] == pytest.approx(0.25) and summary["local_minima_t"] == [0.5]  # on the finite grid
    assert summary["min_accuracy_0_1"] == 0.9  # t = 0.25's accuracy is not counted either


def test_path_summary_per_split_and_warning():
    rows = [Row(t, split, loss + (split == "test"), acc) for t, loss, acc in zip(TS, LOSSES, ACCURACIES) for split in ("train", "test")]
    summary = path_summary(rows)
    assert set(summary) == {"train", "test"}
    assert summary["train"]["barrier"] == pytest.approx(1.15) and summary["test"]["barrier"] == pytest.approx(1.15)
    assert summary["test"]["max_loss_0_1"] == 3.0
    with pytest.warns(UserWarning, match=r"train: non-finite loss at t = \[0.5\]"):
        path_summary([Row(0.0, "train", 1.0, None), Row(0.5, "train", math.nan, None), Row(1.0, "train", 1.0, None)])
