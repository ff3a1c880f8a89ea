"""``lines``: endpoints, the line between them beyond [0, 1], MLI variants, one report, resumable."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from landscape_pl.cli import main
from landscape_pl.io import read_path_csv


def lines_args(out: Path, points: int = 7) -> list[str]:
    return ["lines", f"--out={out}", "--epochs=1", f"--points={points}", "--mli_points=5", "--mli=[all, biases]",
            "--overrides=[--trainer.limit_train_batches=4]", "--accelerator=cpu"]


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_lines_report_resume_and_rerun_of_the_changed_stage(tmp_path: Path, capsys) -> None:
    out = tmp_path / "lines"
    main(lines_args(out))
    report = out / "report"
    table = read_csv(report / "lines.csv")
    assert [(r["endpoints"], r["split"]) for r in table] == [("mlp", "train"), ("mlp", "test")]
    summary = json.loads((out / "line" / "mlp" / "summary.json").read_text())
    profile = read_path_csv(out / "line" / "mlp" / "path.csv")
    assert sorted({r.key for r in profile}) == [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    for row in table:
        mine = {r.key: r for r in profile if r.split == row["split"]}
        assert float(row["loss_t_min"]) == mine[-1.0].loss and float(row["loss_t_max"]) == mine[2.0].loss
        assert float(row["loss_0"]) == mine[0.0].loss and float(row["barrier"]) == summary[row["split"]]["barrier"]
    mli = read_csv(out / "mli" / "mli.csv")
    assert [(r["run"], r["variant"], r["split"]) for r in mli] == [
        (run, variant, split) for run in ("seed1", "seed2") for variant in ("all", "biases") for split in ("train", "test")]
    # the line starts at endpoint seed1 and MLI ends there: the same network on the same data, bit for bit
    for row in table:
        ends = [r for r in mli if r["run"] == "seed1" and r["variant"] == "all" and r["split"] == row["split"]]
        assert float(ends[0]["loss_end"]) == float(row["loss_0"])
    text = (report / "report.md").read_text()
    assert "## Straight lines between endpoints" in text and "## Linear interpolation from initialization" in text
    assert all((report / name).stat().st_size > 0 for name in ("line_mlp.png", "mli.png"))
    assert (report / "mli.csv").read_text() == (out / "mli" / "mli.csv").read_text()
    assert list(out.glob("endpoints/mlp/seed1/**/events.out.tfevents.*")) and list(out.glob("line/mlp/tensorboard/*"))
    capsys.readouterr()

    main(lines_args(out))
    said = capsys.readouterr().out
    assert "running" not in said and said.count("skipped") == 5  # 2 endpoints, line, mli, report

    main(lines_args(out, points=4))
    said = capsys.readouterr().out
    reran = sorted(line.split()[1].rstrip(":") for line in said.splitlines() if line.endswith(": running"))
    assert reran == ["line_mlp", "report"]
    assert sorted({r.key for r in read_path_csv(out / "line" / "mlp" / "path.csv")}) == [-1.0, 0.0, 1.0, 2.0]


def test_editing_an_endpoint_config_file_reruns_its_fits_and_everything_after(tmp_path: Path, capsys) -> None:
    config = tmp_path / "mlp.yaml"
    config.write_text((ROOT / "configs" / "digits" / "mlp.yaml").read_text())
    args = [*lines_args(tmp_path / "lines"), "--mli=[]", f"--endpoints={{mlp: {config}}}"]
    main(args)
    capsys.readouterr()
    config.write_text(config.read_text().replace("lr: 0.05", "lr: 0.02"))  # the same options, another file content
    main(args)
    said = capsys.readouterr().out
    reran = sorted(line.split()[1].rstrip(":") for line in said.splitlines() if line.endswith(": running"))
    assert reran == ["endpoint_mlp_seed1", "endpoint_mlp_seed2", "line_mlp", "report"]
    last = next((tmp_path / "lines").glob("endpoints/mlp/seed1/lightning_logs/version_0/checkpoints/last.ckpt"))
    import torch

    assert torch.load(last, weights_only=False)["optimizer_states"][0]["param_groups"][0]["lr"] == 0.02


@pytest.mark.parametrize(("options", "message"), [
    (["--seeds=[1]"], "line: true needs two seeds"),
    (["--seeds=[1, 1]"], "give distinct seeds"),
    (["--line=false", "--mli=[]"], "nothing to do"),
    (["--t_range=[2.0, -1.0]"], "t_max=-1.0 must be greater than t_min=2.0"),
    (["--points=1"], "points=1"),
    (["--points=5"], "points=5 on t_range=[-1.0, 2.0] misses t = [0.0, 1.0]"),
    (["--endpoints={mlp: configs/nowhere.yaml}"], "configs/nowhere.yaml"),
])
def test_bad_settings_are_refused_before_training(tmp_path: Path, capsys, options, message) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["lines", f"--out={tmp_path / 'lines'}", *options])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "lines" / "endpoints").exists()


def test_lines_on_two_ddp_processes_equals_one_process_evaluation(tmp_path: Path) -> None:
    """Endpoints fitted with DDP on 2 CPU processes (gloo) inside a study; the line's t grid split across
    both ranks and gathered gives the path.csv of a single-process evaluation of the same endpoints."""
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "landscape_pl",
         *lines_args(out), "--mli=[]",
         "--overrides=[--trainer.strategy=ddp, --trainer.devices=2, --trainer.accelerator=cpu, --trainer.limit_train_batches=4]"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ends = [next(out.glob(f"endpoints/mlp/seed{s}/lightning_logs/version_0/checkpoints/last.ckpt")) for s in (1, 2)]
    import torch

    assert all(torch.load(e, weights_only=False)["global_step"] == 4 for e in ends)  # 4 batches per rank, 2 ranks
    main(["interpolate", "--start", str(ends[0]), "--end", str(ends[1]), "--out", str(tmp_path / "one"), "--points=7",
          "--accelerator=cpu", "--progress=false", "--tensorboard=false"])
    assert (out / "line" / "mlp" / "path.csv").read_text() == (tmp_path / "one" / "path.csv").read_text()
    assert len(read_csv(out / "report" / "lines.csv")) == 2
