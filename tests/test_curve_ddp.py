"""Grids under DDP on 2 CPU processes (gloo): curve training through the Trainer; the t grids of
``curve`` and ``interpolate`` and the plane grid of ``plane`` split across ranks, rank 0 writing the
gathered result, which equals a single process's byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from landscape_pl.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def torchrun(*args: str) -> str:
    """Both ranks' stdout; a command that joined the group prints its "wrote ..." line on rank 0 only."""
    return run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "landscape_pl", *args)


def two_processes_write_what_one_does(command: str, options: list[str], tmp_path: Path, *files: str) -> str:
    """Run ``command`` under torchrun (2 ranks) and in this process; every file in ``files`` must be
    byte-identical and rank 0 alone must have written. Returns the single-process copy of the first file."""
    assert torchrun(command, "--out", str(tmp_path / "two"), *options).count("wrote ") == 1
    main([command, "--out", str(tmp_path / "one"), *options])
    for name in files:
        assert (tmp_path / "two" / name).read_text() == (tmp_path / "one" / name).read_text(), name
    return (tmp_path / "one" / files[0]).read_text()


def test_ddp_curve_training_and_gathered_evaluation(digits_bn_endpoints, tmp_path):
    """A 2-process DDP fit trains the curve; a 2-process evaluation writes the single-process path.csv."""
    run("-m", "landscape_pl", "fit", "--config", "configs/digits/tinynet_curve.yaml",
        f"--model.init_args.start={digits_bn_endpoints.a}", f"--model.init_args.end={digits_bn_endpoints.b}",
        "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu", "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=4", f"--trainer.default_root_dir={tmp_path / 'fit'}",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false")
    (ckpt,) = (tmp_path / "fit").glob("lightning_logs/version_0/checkpoints/last.ckpt")
    options = ["--ckpt", str(ckpt), "--points", "7", "--accelerator", "cpu", "--progress", "false", "--tensorboard", "false"]
    single = two_processes_write_what_one_does("curve", options, tmp_path, "path.csv")
    assert len(single.splitlines()) == 1 + 7 * 2


def test_ddp_interpolate_writes_the_single_process_path(digits_endpoints, tmp_path):
    # the ends go in a --config file: torchrun's own parser refuses "--start" after the script
    # ("ambiguous option: --start could match --start-method, --start_method")
    ends = tmp_path / "ends.yaml"
    ends.write_text(f"start: {digits_endpoints.a}\nend: {digits_endpoints.b}\n")
    options = ["--config", str(ends), "--points", "7", "--accelerator", "cpu", "--progress", "false", "--tensorboard", "false"]
    single = two_processes_write_what_one_does("interpolate", options, tmp_path, "path.csv", "summary.json")
    assert len(single.splitlines()) == 1 + 7 * 2


def test_ddp_plane_writes_the_single_process_grid(digits_bn_endpoints, tmp_path):
    """BatchNorm nets: statistics recomputed at every grid point on whichever rank evaluates it."""
    e = digits_bn_endpoints
    options = ["--networks", f"[{e.a}, {e.b}, {e.a_init}]", "--points", "3", "--splits", "[train]",
               "--accelerator", "cpu", "--progress", "false", "--tensorboard", "false"]
    single = two_processes_write_what_one_does("plane", options, tmp_path, "plane.csv", "plane.json")
    assert len(single.splitlines()) == 1 + 3 * 3
