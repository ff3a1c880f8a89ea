"""The study: stages run once, resume, rerun exactly what a changed setting affects, and report."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from landscape_pl.cli import main
from landscape_pl.errors import LandscapeError
from landscape_pl.study.runner import Stage, run_stages


def touch_stage(name: str, out: Path, calls: list[str], settings: dict | None = None, **kwargs) -> Stage:
    def run() -> None:
        calls.append(name)
        out.write_text(name)

    return Stage(name, run, [out], settings or {}, **kwargs)


def test_runner_skips_done_stages_and_reruns_changed_ones_downstream(tmp_path: Path) -> None:
    calls: list[str] = []
    a, b, c = (tmp_path / n for n in "abc")

    def stages(setting: int) -> list[Stage]:
        return [touch_stage("a", a, calls, {"x": 1}), touch_stage("b", b, calls, {"x": setting}, depends=["a"]),
                touch_stage("c", c, calls, {}, inputs=[b], depends=["b"])]

    run_stages(stages(1), tmp_path, log=lambda _: None)
    assert calls == ["a", "b", "c"]
    run_stages(stages(1), tmp_path, log=lambda _: None)
    assert calls == ["a", "b", "c"]  # nothing finished is recomputed
    run_stages(stages(2), tmp_path, log=lambda _: None)
    assert calls == ["a", "b", "c", "b", "c"]  # b changed: b and what depends on it
    c.unlink()
    run_stages(stages(2), tmp_path, log=lambda _: None)
    assert calls[-1] == "c"  # an output gone: that stage again


def test_runner_runs_an_interrupted_stage_over_its_outputs_and_clears_stale_ones(tmp_path: Path) -> None:
    out, seen = tmp_path / "run", []

    def stage(setting: int, crash: bool = False) -> Stage:
        def run() -> None:
            seen.append(out.read_text() if out.exists() else None)  # what a resuming fit would find
            out.write_text(f"partial {setting}")
            if crash:
                raise KeyboardInterrupt
            out.write_text(f"done {setting}")
        return Stage("fit", run, [out], {"x": setting})

    with pytest.raises(KeyboardInterrupt):
        run_stages([stage(1, crash=True)], tmp_path, log=lambda _: None)
    run_stages([stage(1)], tmp_path, log=lambda _: None)
    assert seen == [None, "partial 1"]  # same settings: runs on over what the interrupted run left
    with pytest.raises(KeyboardInterrupt):
        run_stages([stage(2, crash=True)], tmp_path, log=lambda _: None)
    (tmp_path / ".stages" / "fit.json").unlink()  # even with its record lost ...
    out.write_text("partial 2")
    logged: list[str] = []
    run_stages([stage(3)], tmp_path, log=logged.append)
    assert seen[-1] is None and out.read_text() == "done 3"  # ... outputs of unknown settings are never reused
    assert "[study] fit: outputs without a record of their settings, rerunning" in logged


class KillAtEpoch(L.Callback):
    """Ends the process the way SIGKILL does (no cleanup, no final checkpoint) at the start of epoch
    ``LANDSCAPE_TEST_KILL_EPOCH``; without that variable it does nothing, so the settings stay the same."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if str(trainer.current_epoch) == os.environ.get("LANDSCAPE_TEST_KILL_EPOCH"):
            os._exit(9)


def test_study_killed_inside_a_fit_resumes_that_fit_and_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    config = tmp_path / "lines.yaml"
    config.write_text(yaml.safe_dump({
        "endpoints": {"mlp": "configs/digits/mlp.yaml"}, "seeds": [1, 2], "epochs": 3, "points": 4, "mli": [],
        "accelerator": "cpu", "overrides": [
            "--trainer.limit_train_batches=4",
            '--trainer.callbacks+={"class_path": "test_study.KillAtEpoch"}']}))
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests"), os.environ.get("PYTHONPATH", "")])}

    def lines(out: Path, kill: str | None) -> subprocess.CompletedProcess:
        environment = {**env, **({"LANDSCAPE_TEST_KILL_EPOCH": kill} if kill else {})}
        return subprocess.run([sys.executable, "-m", "landscape_pl", "lines", "--config", str(config), f"--out={out}"],
                              cwd=root, env=environment, capture_output=True, text=True, timeout=300)

    killed = lines(tmp_path / "killed", kill="0")  # before any last.ckpt: nothing to resume, the next run starts afresh
    assert killed.returncode == 9, killed.stderr[-2000:]
    killed = lines(tmp_path / "killed", kill="2")
    assert killed.returncode == 9, killed.stderr[-2000:]
    last = tmp_path / "killed/endpoints/mlp/seed1/lightning_logs/version_0/checkpoints/last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 2 * 4  # two epochs were kept
    resumed = lines(tmp_path / "killed", kill=None)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "endpoint_mlp_seed1: interrupted before, running again" in resumed.stdout
    assert "Restored all states from the checkpoint" in resumed.stderr + resumed.stdout
    assert [p.name for p in (tmp_path / "killed/endpoints/mlp/seed1/lightning_logs").iterdir()] == ["version_0"]
    whole = lines(tmp_path / "whole", kill=None)
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert (tmp_path / "killed/line/mlp/path.csv").read_text() == (tmp_path / "whole/line/mlp/path.csv").read_text()


def test_runner_names_stage_and_missing_input(tmp_path: Path) -> None:
    stage = touch_stage("evaluate", tmp_path / "out", [], inputs=[tmp_path / "curve.ckpt"])
    with pytest.raises(LandscapeError, match=r"stage 'evaluate' cannot run: its input .*curve.ckpt.* is missing"):
        run_stages([stage], tmp_path, log=lambda _: None)


def study_args(out: Path, curve_epochs: int = 1) -> list[str]:
    return ["study", "--config", "configs/studies/alignment_digits.yaml", f"--out={out}", "--pairs=[[1, 2]]",
            "--endpoint_epochs=2", f"--curve_epochs={curve_epochs}", "--pam_schedule=[1, 1, 1]", "--points=5",
            "--ensemble_t=[[0.0, 1.0]]", "--plane_points=3", "--accelerator=cpu", "--overrides=[--trainer.limit_train_batches=6]",
            "--endpoint_overrides=[--trainer.limit_val_batches=1]"]


def test_study_end_to_end_resumes_and_reruns_only_changed_stages(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    out = tmp_path / "study"
    main(study_args(out))
    report = out / "report"
    with (report / "tables.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["class"] for r in rows] == ["unaligned", "aligned", "pam_unaligned", "pam_aligned"]
    assert all(0.0 <= float(r["mean_accuracy"]) <= 1.0 and float(r["min_accuracy"]) <= float(r["mean_accuracy"]) for r in rows)
    assert "Table 2" in (report / "tables.md").read_text() and "Verdict" in (report / "tables.md").read_text()
    assert (report / "accuracy_along_curve.png").stat().st_size > 0
    assert json.loads((report / "report.json").read_text())["verdict"]
    align = json.loads((out / "align" / "pair0" / "report.json").read_text())
    with (report / "alignment.csv").open() as handle:
        (aligned_row,) = csv.DictReader(handle)
    assert float(aligned_row["correlation_after"]) == align["mean_correlation"]["after"]
    assert float(aligned_row["barrier_aligned_test"]) == align["barrier"]["aligned"]["test"]
    with (report / "ensembles.csv").open() as handle:
        gathered = list(csv.DictReader(handle))
    with (out / "ensembles" / "aligned_pair0" / "ensembles.csv").open() as handle:
        own = list(csv.DictReader(handle))
    assert [{k: r[k] for k in own[0]} for r in gathered if r["class"] == "aligned" and r["pair"] == "0"] == own
    assert {r["class"] for r in gathered} == {"unaligned", "aligned"}
    assert list(out.glob("**/events.out.tfevents.*"))  # every stage's TensorBoard run under one root
    endpoint = next(out.glob("endpoints/seed1/lightning_logs/version_0/checkpoints/last.ckpt"))
    before = endpoint.stat().st_mtime_ns
    assert torch.load(endpoint, weights_only=False)["global_step"] == 2 * 6  # the overrides reached the fits
    curve = next(out.glob("curves/aligned_pair0/lightning_logs/version_0/checkpoints/last.ckpt"))
    assert torch.load(curve, weights_only=False)["global_step"] == 6
    capsys.readouterr()

    main(study_args(out))
    said = capsys.readouterr().out
    assert "running" not in said and said.count("skipped") > 10

    main(study_args(out, curve_epochs=2))
    said = capsys.readouterr().out
    rerun = {line.split()[1].rstrip(":") for line in said.splitlines() if line.startswith("[study]") and "running" in line}
    assert rerun == {"curve_unaligned_pair0", "curve_aligned_pair0", "evaluate_unaligned_pair0", "evaluate_aligned_pair0",
                     "ensembles_unaligned_pair0", "ensembles_aligned_pair0", "plane_unaligned_pair0", "plane_aligned_pair0",
                     "report"}
    assert endpoint.stat().st_mtime_ns == before


def test_study_missing_config_is_named(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["study", f"--out={tmp_path}", "--curve_config=configs/nowhere.yaml"])
    assert "configs/nowhere.yaml" in capsys.readouterr().err
