"""Curves under DDP on 2 CPU processes (gloo): training through the Trainer, the t grid split across ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from landscape_pl.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_ddp_curve_training_and_gathered_evaluation(digits_bn_endpoints, tmp_path):
    """A 2-process DDP fit trains the curve; a 2-process evaluation writes the single-process path.csv."""
    run("-m", "landscape_pl", "fit", "--config", "configs/digits/tinynet_curve.yaml",
        f"--model.init_args.start={digits_bn_endpoints.a}", f"--model.init_args.end={digits_bn_endpoints.b}",
        "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu", "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=4", f"--trainer.default_root_dir={tmp_path / 'fit'}",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false")
    (ckpt,) = (tmp_path / "fit").glob("lightning_logs/version_0/checkpoints/last.ckpt")
    options = ["--ckpt", str(ckpt), "--points", "7", "--accelerator", "cpu", "--progress", "false", "--tensorboard", "false"]
    run("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "landscape_pl", "curve",
        "--out", str(tmp_path / "two"), *options)
    main(["curve", "--out", str(tmp_path / "one"), *options])
    single = (tmp_path / "one" / "path.csv").read_text()
    assert (tmp_path / "two" / "path.csv").read_text() == single
    assert len(single.splitlines()) == 1 + 7 * 2
