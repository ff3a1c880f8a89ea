"""A quiet console: a study and a ``fit`` print their own lines and Lightning's bars, not Lightning's banners,
product tips or warnings about choices made on purpose; our own warnings still show, once each."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

from conftest import CONFIGS
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn

from landscape_pl.console import quiet_lightning

NOISE = re.compile(
    r"💡|Tip:|litlogger|litmodels|LitServe|cloud (uploads|logging)|(GPU|TPU|HPU) available|LightningCLI's args"
    r"|does not have many workers|smaller than the logging interval|deprecated|weights_only|Warning:"
)


def console(*argv: str, cwd: Path) -> str:
    """stdout and stderr together of ``python -m landscape_pl ARGV``, with every warning filter at ``default``."""
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    done = subprocess.run([sys.executable, "-m", "landscape_pl", *argv], check=False, cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert done.returncode == 0, done.stdout
    return done.stdout


def noise(text: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]", text) if NOISE.search(line)]


def test_a_study_prints_its_stages_and_no_lightning_noise(tmp_path) -> None:
    """Each nested fit (fitting.fit_run) is quiet: the lines twin prints its stages and its report only."""
    out = console("lines", "--config", "straight_line_digits", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert "[study] endpoint_mlp500_seed1: running" in out and "| mlp500 | test |" in out
    assert not noise(out)


def test_fit_prints_no_banners_or_tips(tmp_path) -> None:
    out = console("fit", "--config", str(CONFIGS / "digits" / "mlp.yaml"), "--trainer.max_epochs=1",
                  f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false", cwd=tmp_path)
    assert "Trainable params" in out  # the model summary, Lightning's own useful output, stays
    assert not noise(out)
    assert (tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt").is_file()


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_quiet_lightning_drops_the_noise_and_keeps_our_warnings() -> None:
    shown, rank_zero = Lines(), logging.getLogger("lightning.pytorch.utilities.rank_zero")
    rank_zero.addHandler(shown)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            with quiet_lightning():
                rank_zero_info("GPU available: False, used: False")
                rank_zero_info("💡 Tip: For seamless cloud uploads and versioning, try installing [litmodels]")
                rank_zero_info("Restoring states from the checkpoint path at last.ckpt")
                rank_zero_warn("The 'train_dataloader' does not have many workers which may be a bottleneck.",
                               category=PossibleUserWarning)
                for _ in range(3):  # one location: shown once
                    warnings.warn("group 0: constant activations on the alignment data for units [3]", stacklevel=1)
            rank_zero_info("GPU available: False, used: False")  # outside: Lightning as it is
    finally:
        rank_zero.removeHandler(shown)
    assert shown.messages == ["Restoring states from the checkpoint path at last.ckpt", "GPU available: False, used: False"]
    assert [str(w.message) for w in caught] == ["group 0: constant activations on the alignment data for units [3]"]


def test_our_warnings_reach_the_console_inside_quiet_lightning(tmp_path) -> None:
    """reporting.path_summary's non-finite warning, raised inside quiet_lightning twice, is printed once."""
    script = (
        "from landscape_pl.console import quiet_lightning\n"
        "from landscape_pl.paths.evaluate import Row\n"
        "from landscape_pl.reporting import path_summary\n"
        "rows = [Row(0.0, 'train', 1.0, 0.5), Row(0.5, 'train', float('nan'), 0.1), Row(1.0, 'train', 1.0, 0.5)]\n"
        "with quiet_lightning(info=False):\n"
        "    for _ in range(2):\n"
        "        path_summary(rows)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("train: non-finite loss at t = [0.5]") == 1, done.stderr
