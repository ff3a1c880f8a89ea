"""Every paper recipe in configs/ has a small twin on data that needs no download, and every twin
runs end to end through the CLI exactly as its usage line says (only ``--out`` is redirected)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from conftest import CONFIGS, ROOT, command_of, execute, outputs
from landscape_pl.cli import main

STUDY_COMMANDS = ("study", "lines", "trajectory-experiment", "connect", "sweep", "stability")
MARK = re.compile(r"^# Small twin of: (.*)$", re.MULTILINE)


def twin_targets(config: Path) -> list[Path] | None:
    """The recipes a config is the small twin of (globs resolved), or None if it is not a twin."""
    mark = MARK.search(config.read_text())
    if mark is None:
        return None
    patterns = [token for token in mark.group(1).split() if token.endswith(".yaml")]
    return [path for pattern in patterns for path in sorted(ROOT.glob(pattern))]


RECIPES = [p for p in sorted(CONFIGS.glob("*/*.yaml")) if command_of(p) in STUDY_COMMANDS]
TWINS = [p for p in RECIPES if twin_targets(p) is not None]


def test_every_paper_recipe_has_a_small_twin() -> None:
    covered = {target for twin in TWINS for target in twin_targets(twin)}
    for twin in TWINS:
        patterns = MARK.search(twin.read_text()).group(1)
        assert twin_targets(twin), f"{twin.name}: 'Small twin of: {patterns}' names no config"
    uncovered = [str(p.relative_to(ROOT)) for p in RECIPES if p not in covered and p not in TWINS]
    assert not uncovered, f"recipes without a small twin: {uncovered}"
    assert len(TWINS) >= 11  # alignment, straight line, MLI, 3 trajectory, 4 DSS connect, DSS sweep, stability


def check_study(out: Path, twin: Path) -> None:
    report = json.loads((out / "report" / "report.json").read_text())
    with (out / "report" / "tables.csv").open() as handle:
        assert [r["class"] for r in csv.DictReader(handle)] == ["unaligned", "aligned", "pam_unaligned", "pam_aligned"]
    assert {p.name for p in (out / "report").glob("plane_*.png")} == {
        f"plane_{name}_pair0.png" for name in ("endpoints", "unaligned", "aligned", "pam_unaligned", "pam_aligned")}
    # the acceptance: aligned at least as accurate along the curve, or a plain statement that it is not
    assert re.match(r"(aligned curves are at least as accurate|on this data aligned curves are NOT as accurate)", report["verdict"])


def check_lines(out: Path, twin: Path) -> None:
    text = (out / "report" / "report.md").read_text()
    assert "| train |" in text and "| test |" in text


def check_trajectory(out: Path, twin: Path) -> None:
    pca = json.loads((out / "report" / "pca.json").read_text())
    assert 0.0 < pca["explained_first_2"] <= pca["explained_top_10"] <= 1.0 + 1e-9


def check_connect(out: Path, twin: Path) -> None:
    """The verdict the recipe's comment promises (appendix D's swap: not connected), a length >= 1."""
    summary = json.loads((out / "summary.json").read_text())
    expected = "not connected within budget" if "not connected within budget" in twin.read_text() else "connected"
    assert summary["verdict"] == expected
    assert summary["normalized_length"] >= 1.0  # a string is never shorter than the straight segment


def check_sweep(out: Path, twin: Path) -> None:
    """Every pair connects at every threshold, and a lower L0 never needs fewer beads."""
    with (out / "sweep.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 2 and all(float(r["connected_share"]) == 1.0 for r in rows)
    by_threshold = sorted(rows, key=lambda r: -float(r["threshold"]))
    beads = [float(r["mean_beads"]) for r in by_threshold]
    assert beads == sorted(beads)


def check_stability(out: Path, twin: Path) -> None:
    """Unstable at initialization, (more) stable at the last spawn step: the error barrier at k = 0 is above the
    barrier at the largest k, on the split the summary reads."""
    summary = json.loads((out / "report" / "summary.json").read_text())
    barriers = summary["error_barrier"]["unaligned"]
    assert summary["steps"][0] == 0 and len(barriers) == len(summary["steps"]) >= 2
    assert barriers[0] > barriers[-1] >= 0.0


CHECKS = {"study": check_study, "lines": check_lines, "trajectory-experiment": check_trajectory,
          "connect": check_connect, "sweep": check_sweep, "stability": check_stability}
# the notebooks that read each command's output: (notebook, its folder variable, the folder under --out)
NOTEBOOKS = {"study": [("alignment_study", "LANDSCAPE_STUDY_DIR", "."), ("planes", "LANDSCAPE_PLANE_DIR", "planes/aligned_pair0")],
             "lines": [("paths", "LANDSCAPE_LINES_DIR", ".")],
             "trajectory-experiment": [("trajectory", "LANDSCAPE_TRAJECTORY_DIR", ".")]}


@pytest.mark.parametrize("twin", TWINS, ids=[f"{p.parent.name}/{p.name}" for p in TWINS])
def test_small_twin_runs_end_to_end(twin: Path, tmp_path: Path, monkeypatch, kernel_dirs: Path) -> None:
    """The twin's command, its output checked, and the notebook that reads such output run on it."""
    monkeypatch.chdir(ROOT)  # the usage lines run from the repository root
    command = command_of(twin)
    main([command, "--config", str(twin.relative_to(ROOT)), f"--out={tmp_path}"])
    CHECKS[command](tmp_path, twin)
    for name, variable, folder in NOTEBOOKS.get(command, []):
        notebook = execute(name, variable, tmp_path / folder, kernel_dirs, monkeypatch)
        assert outputs(notebook, "image/png")
        if name == "alignment_study":
            verdict = json.loads((tmp_path / "report" / "report.json").read_text())["verdict"]
            assert any(verdict in table for table in outputs(notebook, "text/markdown"))


def test_readme_starts_with_the_main_job_and_the_ci_test_command() -> None:
    """README's first two commands set up and run the main job (a twin, run above) and the tests; .ci/run
    runs exactly that test command."""
    block = (ROOT / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    main_job, tests = (line.split("#")[0].strip() for line in block.strip().splitlines()[:2])
    assert main_job == "pip install -c requirements.lock -e . && python -m landscape_pl study --config configs/studies/alignment_digits.yaml"
    assert tests.startswith("pip install -c requirements.lock ")  # both installs pinned to the lock
    assert ROOT / "configs/studies/alignment_digits.yaml" in TWINS
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == tests
