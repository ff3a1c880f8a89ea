"""The notebooks in notebooks/ run top to bottom on a run's output files and draw their figures.

The lines folder comes from the real ``lines`` command (one epoch, 7 points), the plane folder from the
real ``plane`` command (a 5 x 5 grid through the digits endpoints), the trajectory folder from the real
``trajectory-experiment`` of configs/trajectory/digits_inits.yaml (2 epochs instead of 6); the study
folder is written with the study's own writers (path CSV, curve summaries, report, ensemble tables)
from synthetic profiles with exact numbers (tests/test_recipes.py also runs it on the real small twin).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from nbclient.exceptions import CellExecutionError

from conftest import ROOT, execute, outputs
from landscape_pl.cli import main
from landscape_pl.api.curves import EnsembleResult, curve_summary
from landscape_pl.api.lines import PathResult
from landscape_pl.io import write_json, write_path_csv
from landscape_pl.paths import Row
from landscape_pl.study.alignment import CLASSES
from landscape_pl.study.report import write_report

GROUPS = ("features.0", "features.3", "features.6")


def synthetic_study(root: Path) -> dict:
    """A finished study's files for 2 pairs and the four classes: aligned curves dip less than unaligned ones."""
    ts = np.linspace(0, 1, 11)
    dips = {"unaligned": 0.30, "aligned": 0.05, "pam_unaligned": 0.20, "pam_aligned": 0.02}
    evaluations = {}
    for pair in range(2):
        for cls in CLASSES:
            bump = 4 * ts * (1 - ts) * (dips[cls] + 0.01 * pair)
            rows = [Row(float(t), split, 0.1 + 2 * b, 0.95 - b) for split in ("train", "test") for t, b in zip(ts, bump)]
            out = root / "evaluate" / f"{cls}_pair{pair}"
            write_path_csv(rows, out / "path.csv")
            write_json({"curve": "synthetic", **curve_summary(rows, 0.05 + 0.01 * pair)}, out / "summary.json")
            evaluations[(cls, pair)] = PathResult.load(out)
            if cls in ("unaligned", "aligned"):
                members = [{"ensemble": "curve t=0/1", "members": 2, "accuracy": 0.96, "loss": 0.12},
                           {"ensemble": "independent (2 checkpoints)", "members": 2, "accuracy": 0.965, "loss": 0.11}]
                EnsembleResult(members).save(root / "ensembles" / f"{cls}_pair{pair}")
        before = dict(zip(GROUPS, (0.6, 0.4, 0.3)))
        write_json({
            "start": "a.ckpt", "end": "b.ckpt", "method": "activation", "fraction": 1.0, "samples": 1437,
            "aligned": "aligned.ckpt",
            "groups": {g: {"units": 16, "before": before[g], "after": before[g] + 0.3, "dead_start": [], "dead_end": []} for g in GROUPS},
            "mean_correlation": {"before": 0.4333, "after": 0.7333},
            "barrier": {"unaligned": {"train": 0.8, "test": 0.9}, "aligned": {"train": 0.1, "test": 0.12}},
        }, root / "align" / f"pair{pair}" / "report.json")
    return write_report(evaluations, root / "report")


def test_alignment_study_notebook(tmp_path, kernel_dirs, monkeypatch):
    report = synthetic_study(tmp_path)
    notebook = execute("alignment_study", "LANDSCAPE_STUDY_DIR", tmp_path, kernel_dirs, monkeypatch)
    assert len(outputs(notebook, "image/png")) == 3  # Figure 2, loss along the curves, Figure 1b
    tables, alignment, ensembles = outputs(notebook, "text/markdown")
    assert report["verdict"].startswith("aligned curves are at least as accurate") and report["verdict"] in tables
    for row in report["classes"]:
        assert f"| {row['class']} | 2 | {row['mean_accuracy'] * 100:.2f} ± {row['mean_accuracy_std'] * 100:.2f} |" in tables
    assert "| 1 | 0.433 | 0.733 | test | 0.9000 | 0.1200 |" in alignment
    assert ensembles.count("| independent (2 checkpoints) | 2 | 96.50 | 0.1100 |") == 4


def test_paths_notebook_on_lines_output(tmp_path, kernel_dirs, monkeypatch):
    main(["lines", "--out", str(tmp_path), "--epochs", "1", "--points", "7", "--mli_points", "5",
          "--overrides=[--trainer.limit_train_batches=4]", "--accelerator=cpu"])
    notebook = execute("paths", "LANDSCAPE_LINES_DIR", tmp_path, kernel_dirs, monkeypatch)
    assert len(outputs(notebook, "image/png")) == 2  # the line on [-1, 2], the MLI paths of both endpoints
    printed = "".join(outputs(notebook, "stream"))
    line = json.loads((tmp_path / "line" / "mlp" / "summary.json").read_text())
    assert f"mlp test: barrier {line['test']['barrier']:.4f}, local minima at t = {line['test']['local_minima_t']}" in printed
    (table,) = outputs(notebook, "text/markdown")
    with (tmp_path / "mli" / "mli.csv").open() as handle:
        for row in csv.DictReader(handle):
            assert f"| {row['run']} | {row['variant']} | {row['split']} | {row['monotonic']} | {row['plateau_length']} |" in table


def test_planes_notebook_on_plane_output(digits_endpoints, tmp_path, kernel_dirs, monkeypatch):
    e, out = digits_endpoints, tmp_path / "plane"
    curve = tmp_path / "curve.csv"
    curve.write_text(f"t,checkpoint\n0,{e.a}\n1,{e.b}\n")
    main(["plane", "--networks", json.dumps([str(e.a), str(e.b), str(e.a_init)]), "--points=5", f"--curve=[{curve}]",
          f"--out={out}", "--progress=false", "--tensorboard=false"])
    notebook = execute("planes", "LANDSCAPE_PLANE_DIR", out, kernel_dirs, monkeypatch)
    assert len(outputs(notebook, "image/png")) == 1  # loss and accuracy contours, train and test
    printed = "".join(outputs(notebook, "stream"))
    summary = json.loads((out / "plane.json").read_text())
    assert [a["label"] for a in summary["anchors"]] == ["θ1", "θ2", "θ3"]
    for a in summary["anchors"]:
        assert (f"{a['label']} at ({a['x']:.3f}, {a['y']:.3f}): "
                f"train loss {a['train_loss']:.4f}, accuracy {100 * a['train_accuracy']:.2f}%; "
                f"test loss {a['test_loss']:.4f}, accuracy {100 * a['test_accuracy']:.2f}%\n") in printed
    with (out / "plane.csv").open(newline="") as handle:
        grid = list(csv.DictReader(handle))
    assert len(grid) == 5 * 5 * 2
    for split in ("train", "test"):
        lowest = min((r for r in grid if r["split"] == split), key=lambda r: float(r["loss"]))
        assert float(lowest["loss"]) == summary["min_loss"][split]
        assert (f"lowest {split} loss on the grid: {summary['min_loss'][split]:.4f} "
                f"at ({float(lowest['x']):.3f}, {float(lowest['y']):.3f})\n") in printed
    off = max(p["distance_off_plane"] for p in summary["curve"])
    assert f"curve: 2 checkpoints, at most {off:.3g} off the plane\n" in printed


def test_trajectory_notebook_on_inits_experiment(tmp_path, kernel_dirs, monkeypatch):
    main(["trajectory-experiment", "--config", str(ROOT / "configs/trajectory/digits_inits.yaml"), f"--out={tmp_path}",
          "--epochs=2", "--progress=false"])
    notebook = execute("trajectory", "LANDSCAPE_TRAJECTORY_DIR", tmp_path, kernel_dirs, monkeypatch)
    assert len(outputs(notebook, "image/png")) == 1  # joint PCA, distances per epoch, final distances
    printed = "".join(outputs(notebook, "stream"))
    summary = json.loads((tmp_path / "report" / "pca.json").read_text())
    assert summary["runs"] == ["run0", "run1", "run2"] and summary["snapshots"] == 9  # 3 runs x (init + 2 epochs)
    assert (f"9 snapshots of 3 runs; explained variance: first 2 components {100 * summary['explained_first_2']:.2f}%, "
            f"top 10 {100 * summary['explained_top_10']:.2f}%\n") in printed
    for run in summary["runs"]:
        assert (f"{run}: final distance from origin {summary['final_from_origin'][run]:.4f}, "
                f"from initialization {summary['final_from_init'][run]:.4f}\n") in printed
    pairwise = summary["final_pairwise_distance"]
    assert (f"distance between final solutions: mean {pairwise['mean']:.4f}, min {pairwise['min']:.4f}, "
            f"max {pairwise['max']:.4f}\n") in printed
    (table,) = outputs(notebook, "text/markdown")
    with (tmp_path / "report" / "final_distances.csv").open(newline="") as handle:
        header, *finals = list(csv.reader(handle))
    assert "| run | run0 | run1 | run2 |" in table and header == ["run", "run0", "run1", "run2"]
    for name, *distances in finals:
        assert f"| {name} | " + " | ".join(f"{float(d):.4f}" for d in distances) + " |" in table


def test_python_api_notebook(tmp_path, kernel_dirs, monkeypatch):
    notebook = execute("python_api", "LANDSCAPE_API_DIR", tmp_path, kernel_dirs, monkeypatch)
    assert len(outputs(notebook, "image/png")) >= 4  # the line, the aligned line, the curve, the plane
    printed = "".join(outputs(notebook, "stream"))
    assert all((tmp_path / "line" / name).is_file() for name in ("path.csv", "summary.json", "path.png"))
    line = json.loads((tmp_path / "line" / "summary.json").read_text())
    assert f"barrier {line['test']['barrier']:.4f}\n" in printed
    before, after = map(float, re.search(r"mean correlation of corresponding units: before (-?[\d.]+), after (-?[\d.]+)",
                                         printed).groups())
    assert after > before
    for method in ("activation", "weight"):
        aligned, relation, unaligned = re.search(
            rf"test, {method} matching: aligned barrier (-?[\d.]+) (<|>=) unaligned (-?[\d.]+)\n", printed).groups()
        assert abs(float(unaligned) - line["test"]["barrier"]) < 1e-3  # the same line, walked by align on 11 points
        assert relation == "<" and float(aligned) < float(unaligned)  # on these seeds alignment lowers the barrier


@pytest.mark.parametrize(("name", "variable", "command"), [
    ("paths", "LANDSCAPE_LINES_DIR", "python -m landscape_pl lines"),
    ("alignment_study", "LANDSCAPE_STUDY_DIR", "python -m landscape_pl study --config"),
    ("planes", "LANDSCAPE_PLANE_DIR", "python -m landscape_pl plane --networks"),
    ("trajectory", "LANDSCAPE_TRAJECTORY_DIR",
     "python -m landscape_pl trajectory-experiment --config configs/trajectory/digits_inits.yaml"),
])
def test_missing_folder_says_how_to_make_it(tmp_path, kernel_dirs, monkeypatch, name, variable, command):
    with pytest.raises(CellExecutionError) as error:
        execute(name, variable, tmp_path / "absent", kernel_dirs, monkeypatch)
    assert "FileNotFoundError" in str(error.value) and command in str(error.value) and variable in str(error.value)
