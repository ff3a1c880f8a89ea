"""The notebooks in notebooks/ run top to bottom on a run's output files and draw their figures.

The demo folder comes from the real ``demo`` command (one epoch, 7 points); the study folder is written
with the study's own writers (path CSV, curve summaries, report, ensemble tables) from synthetic
profiles, because a real study takes minutes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from landscape_pl.cli import main
from landscape_pl.commands.curve import curve_summary, write_table
from landscape_pl.io import write_json, write_path_csv
from landscape_pl.paths import Row
from landscape_pl.study.alignment import CLASSES
from landscape_pl.study.report import write_report

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
GROUPS = ("features.0", "features.3", "features.6")


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory) -> Path:
    """A python3 kernel spec of this very interpreter, first on JUPYTER_PATH: the notebooks run where
    landscape_pl is installed even on a machine whose only python3 kernel belongs to another Python."""
    import ipykernel.kernelspec

    prefix = tmp_path_factory.mktemp("jupyter")
    ipykernel.kernelspec.install(kernel_name="python3", prefix=str(prefix))
    kernel = json.loads((prefix / "share/jupyter/kernels/python3/kernel.json").read_text())
    assert kernel["argv"][0] == sys.executable
    return prefix / "share" / "jupyter"


def execute(name: str, variable: str, folder: Path, kernel_dirs: Path, monkeypatch) -> nbformat.NotebookNode:
    """Run notebooks/<name>.ipynb as Jupyter would (from notebooks/), reading ``folder``; outputs by cell."""
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dirs))
    monkeypatch.setenv(variable, str(folder))
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells), f"{name}.ipynb is committed with outputs"
    NotebookClient(notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode, kind: str) -> list[str]:
    """Every output of one MIME type (``image/png``, ``text/markdown``) or, with ``stream``, printed text."""
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if kind == "stream" and output.output_type == "stream":
                found.append(output.text)
            elif kind in output.get("data", {}):
                found.append(output.data[kind])
    return found


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
            evaluations[(cls, pair)] = out / "summary.json"
            if cls in ("unaligned", "aligned"):
                members = [{"ensemble": "curve t=0/1", "members": 2, "accuracy": 0.96, "loss": 0.12},
                           {"ensemble": "independent (2 checkpoints)", "members": 2, "accuracy": 0.965, "loss": 0.11}]
                write_table(members, root / "ensembles" / f"{cls}_pair{pair}")
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


def test_paths_notebook_on_demo_output(tmp_path, kernel_dirs, monkeypatch):
    main(["demo", "--out", str(tmp_path), "--epochs", "1", "--points", "7"])
    notebook = execute("paths", "LANDSCAPE_DEMO_DIR", tmp_path, kernel_dirs, monkeypatch)
    assert len(outputs(notebook, "image/png")) == 2  # the line on [-1, 2], the MLI path
    printed = "".join(outputs(notebook, "stream"))
    line = json.loads((tmp_path / "line" / "summary.json").read_text())
    mli = json.loads((tmp_path / "mli" / "summary.json").read_text())
    assert f"test: barrier {line['test']['barrier']:.4f}, local minima at t = {line['test']['local_minima_t']}" in printed
    verdict = "monotonic" if mli["train"]["monotonic"] else f"not monotonic: first rise at t = {mli['train']['first_increase_t']:.2f}"
    assert f"train: {verdict}\n" in printed


@pytest.mark.parametrize(("name", "variable", "command"), [
    ("paths", "LANDSCAPE_DEMO_DIR", "python -m landscape_pl demo"),
    ("alignment_study", "LANDSCAPE_STUDY_DIR", "python -m landscape_pl study --config"),
])
def test_missing_folder_says_how_to_make_it(tmp_path, kernel_dirs, monkeypatch, name, variable, command):
    with pytest.raises(CellExecutionError) as error:
        execute(name, variable, tmp_path / "absent", kernel_dirs, monkeypatch)
    assert "FileNotFoundError" in str(error.value) and command in str(error.value) and variable in str(error.value)
