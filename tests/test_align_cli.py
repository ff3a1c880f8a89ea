"""``align`` and ``signature`` end to end through the CLI, on endpoints trained through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from landscape_pl.cli import LandscapeCLI, main, model_from_checkpoint
from landscape_pl.data import DigitsDataModule
from landscape_pl.io import load_network, read_path_csv, save_network
from landscape_pl.models import MLP

DIGITS = ["--data", "landscape_pl.data.DigitsDataModule"]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.logger=false"]


def outputs(ckpt: Path) -> torch.Tensor:
    x = torch.cat([x for x, _ in DigitsDataModule().eval_dataloader("test")])
    network = load_network(ckpt).network.eval()
    with torch.no_grad():
        return network(x)


@pytest.fixture(scope="module")
def aligned_run(digits_endpoints, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("align")
    main(["align", "--start", str(digits_endpoints.a), "--end", str(digits_endpoints.b), "--out", str(out),
          "--points", "5", "--progress", "false"])
    return out


def test_align_lowers_the_barrier_and_writes_the_same_function(aligned_run, digits_endpoints):
    report = json.loads((aligned_run / "report.json").read_text())
    for split in ("train", "test"):
        assert report["barrier"]["aligned"][split] < report["barrier"]["unaligned"][split] - 0.05
    layer = report["groups"]["layers.1"]
    assert layer["units"] == 128 and layer["after"] > layer["before"] + 0.3
    assert report["samples"] == round(0.2 * len(DigitsDataModule().split("train")))
    permutation = json.loads((aligned_run / "permutation.json").read_text())["permutation"]["layers.1"]
    assert sorted(permutation) == list(range(128)) and permutation != list(range(128))
    torch.testing.assert_close(outputs(aligned_run / "aligned.ckpt"), outputs(digits_endpoints.b), rtol=1e-5, atol=1e-5)
    end = load_network(digits_endpoints.b).network.state_dict()["layers.1.weight"]
    assert torch.equal(load_network(aligned_run / "aligned.ckpt").network.state_dict()["layers.1.weight"], end[permutation])
    assert (aligned_run / "heatmaps" / "layers.1.png").is_file() and (aligned_run / "mean_correlation.png").is_file()
    assert (aligned_run / "paths.png").is_file()


def test_report_figures_are_in_tensorboard(aligned_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = (aligned_run / "tensorboard").glob("events.out.tfevents.*")
    tags = EventAccumulator(str(events)).Reload().Tags()
    assert {"align/correlation/layers.1", "align/mean_correlation"} <= set(tags["images"])
    assert {"align/mean_correlation/before", "align/mean_correlation/after"} <= set(tags["scalars"])


def test_the_aligned_checkpoint_works_with_interpolate_and_validate(aligned_run, digits_endpoints, tmp_path):
    main(["interpolate", "--start", str(aligned_run / "aligned.ckpt"), "--end", str(digits_endpoints.b), *DIGITS,
          "--t_min", "0", "--t_max", "1", "--points", "2", "--out", str(tmp_path), "--progress", "false"])
    ends = {r.split: r.loss for r in read_path_csv(tmp_path / "path.csv") if r.key == 1.0}
    starts = {r.split: r.loss for r in read_path_csv(tmp_path / "path.csv") if r.key == 0.0}
    assert starts == pytest.approx(ends, rel=1e-5)  # aligned B and B: one function
    validated = LandscapeCLI(args=model_from_checkpoint(["validate", "--ckpt_path", str(aligned_run / "aligned.ckpt"), *DIGITS, *QUIET]))
    assert float(validated.trainer.callback_metrics["val/loss"]) == pytest.approx(ends["test"], rel=1e-5)


def test_weight_matching_through_the_cli(digits_endpoints, aligned_run, tmp_path):
    main(["align", "--start", str(digits_endpoints.a), "--end", str(digits_endpoints.b), "--method", "weight",
          "--out", str(tmp_path), "--points", "0", "--tensorboard", "false", "--progress", "false"])
    report = json.loads((tmp_path / "report.json").read_text())
    assert "barrier" not in report and report["method"] == "weight"
    assert report["groups"]["layers.1"]["after"] > report["groups"]["layers.1"]["before"] + 0.3
    torch.testing.assert_close(outputs(tmp_path / "aligned.ckpt"), outputs(digits_endpoints.b), rtol=1e-5, atol=1e-5)


def test_signature_of_an_endpoint_with_itself_counts_its_live_units(digits_endpoints, aligned_run, tmp_path):
    main(["signature", "--start", str(digits_endpoints.a), "--end", str(digits_endpoints.b),
          "--midpoint", str(digits_endpoints.a), "--out", str(tmp_path), "--progress", "false"])
    result = json.loads((tmp_path / "signature.json").read_text())["signature"]
    dead = json.loads((aligned_run / "report.json").read_text())["groups"]["layers.1"]["dead_start"]
    itself = result["midpoint"]["start"]
    assert itself["as_is"]["layers.1"] == pytest.approx((128 - len(dead)) / 128, abs=1e-6)
    assert itself["aligned"]["layers.1"] == pytest.approx(itself["as_is"]["layers.1"], abs=1e-6)
    linear = result["linear midpoint"]
    assert set(linear) == {"start", "end"} and 0 < linear["start"]["as_is"]["layers.1"] < 1
    assert (tmp_path / "signature.png").is_file()


def test_bad_input_is_named(digits_endpoints, tmp_path, capsys):
    narrow = save_network(MLP(64, (64,)), tmp_path / "narrow.ckpt", "classification")
    with pytest.raises(SystemExit) as exit_info:
        main(["align", "--start", str(digits_endpoints.a), "--end", str(narrow), *DIGITS, "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "first difference at layers.1.weight (128, 64) vs layers.1.weight (64, 64)" in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        main(["align", "--start", str(digits_endpoints.a), "--end", str(digits_endpoints.b), "--fraction", "0", "--out", str(tmp_path)])
    assert "fraction=0.0" in capsys.readouterr().err


def test_batchnorm_endpoints_align_with_their_statistics(digits_bn_endpoints, tmp_path):
    main(["align", "--start", str(digits_bn_endpoints.a), "--end", str(digits_bn_endpoints.b), "--out", str(tmp_path),
          "--points", "0", "--tensorboard", "false", "--progress", "false"])
    x = torch.cat([x for x, _ in DigitsDataModule(flatten=False).eval_dataloader("test")])
    aligned, end = (load_network(p).network.eval() for p in (tmp_path / "aligned.ckpt", digits_bn_endpoints.b))
    with torch.no_grad():
        torch.testing.assert_close(aligned(x), end(x), rtol=1e-5, atol=1e-5)
    report = json.loads((tmp_path / "report.json").read_text())
    assert list(report["groups"]) == ["layers.0", "layers.3", "layers.6"]
    assert all(g["after"] > g["before"] for g in report["groups"].values())
