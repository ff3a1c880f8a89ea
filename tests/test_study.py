"""The study: stages run once, resume, rerun exactly what a changed setting affects, and report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

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


def test_runner_names_stage_and_missing_input(tmp_path: Path) -> None:
    stage = touch_stage("evaluate", tmp_path / "out", [], inputs=[tmp_path / "curve.ckpt"])
    with pytest.raises(LandscapeError, match=r"stage 'evaluate' cannot run: its input .*curve.ckpt.* is missing"):
        run_stages([stage], tmp_path, log=lambda _: None)


def study_args(out: Path, curve_epochs: int = 1) -> list[str]:
    return ["study", "--config", "configs/studies/alignment_digits.yaml", f"--out={out}", "--pairs=[[1, 2]]",
            "--endpoint_epochs=2", f"--curve_epochs={curve_epochs}", "--pam_schedule=[1, 1, 1]", "--points=5",
            "--ensemble_t=[[0.0, 1.0]]", "--accelerator=cpu", "--overrides=[--trainer.limit_train_batches=6]",
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
    assert (out / "ensembles" / "aligned_pair0" / "ensembles.csv").is_file()
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
                     "ensembles_unaligned_pair0", "ensembles_aligned_pair0", "report"}
    assert endpoint.stat().st_mtime_ns == before


def test_study_missing_config_is_named(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["study", f"--out={tmp_path}", "--curve_config=configs/nowhere.yaml"])
    assert "configs/nowhere.yaml" in capsys.readouterr().err
