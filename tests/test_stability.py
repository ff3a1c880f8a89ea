"""``stability``: children spawned from a parent's whole training state differ only in their data order, a
spawn step beyond the parent's length is refused, an interrupted study redoes nothing finished, and the
command writes the table, the figure, the summary and TensorBoard scalars."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import lightning as L
import pytest
import torch

from landscape_pl.analysis.stability import error_barrier, stable_from
from landscape_pl.cli import main
from landscape_pl.io import read_checkpoint
from landscape_pl.layout import Study
from landscape_pl.study.stability import stability

# 2 epochs of 4 batches: the parent's length is 8 optimizer steps
SHORT = ["--trainer.max_epochs=2", "--trainer.limit_train_batches=4"]
LENGTH = 8


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(checkpoint)["state_dict"]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_error_barrier_is_the_papers_and_stable_from_is_the_first_step_below_the_threshold() -> None:
    # the ends' mean, not the chord: a line rising from 0.1 to 0.3 with no bump has barrier 0.3 - 0.2
    assert error_barrier([0.0, 0.5, 1.0], [0.1, 0.2, 0.3]) == pytest.approx(0.1)
    assert error_barrier([0.0, 0.5, 1.0], [0.2, 0.5, 0.2]) == pytest.approx(0.3)
    assert error_barrier([-0.5, 0.0, 0.5, 1.0, 1.5], [0.9, 0.2, 0.2, 0.2, 0.9]) == 0.0  # t outside [0, 1] is not the path
    assert stable_from([100, 0, 25], [0.01, 0.3, 0.05], 0.02) == 100
    assert stable_from([0, 25], [0.3, None], 0.02) is None


def test_children_sharing_a_data_order_are_one_network_with_no_barrier(tmp_path: Path) -> None:
    """Spawned mid-training (k = 4) or at the parent's last step (k = 8) with the same data seed, the two children
    are bit for bit one network: they differ in nothing but their data order."""
    halving = ["--model.init_args.lr_scheduler.init_args.step_size=1", "--model.init_args.lr_scheduler.init_args.gamma=0.5"]
    result = stability(out=tmp_path, steps=[4, LENGTH], data_seeds=[5, 5], overrides=[*SHORT, *halving], points=5, splits=["test"],
                       accelerator="cpu")
    layout = Study(tmp_path)
    for k in (4, LENGTH):
        a, b = (layout.child(k, i).last for i in (0, 1))
        ended = read_checkpoint(a)
        assert ended["global_step"] == LENGTH
        # the schedule went on from the parent's position: halved once per epoch of the whole run, not restarted at k
        assert ended["lr_schedulers"][0]["last_epoch"] == 2 and ended["optimizer_states"][0]["param_groups"][0]["lr"] == 0.5 / 4
        assert same(weights(a), weights(b))
    assert same(weights(layout.child(LENGTH, 0).last), weights(layout.spawned(LENGTH)))  # nothing left to train
    assert not same(weights(layout.child(4, 0).last), weights(layout.spawned(4)))
    assert [(r["step"], r["error_barrier"]) for r in result.rows] == [(4, 0.0), (LENGTH, 0.0)]
    # the loss along a line from a network to itself moves by float rounding of (1 - t) θ + t θ only
    assert all(0.0 <= r["loss_barrier"] < 1e-6 for r in result.rows)
    assert result.summary["stable_from"] == {"unaligned": 4} and result.summary["total_steps"] == LENGTH


def test_a_spawn_step_beyond_the_parents_length_is_refused(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["stability", f"--out={tmp_path}", "--steps=[0, 9]", f"--overrides={SHORT}", "--accelerator=cpu"])
    assert stopped.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == ("error: spawn step k=9 is beyond the parent's training length of 8 optimizer steps (its max_epochs x "
                    "batches per epoch): give spawn steps up to 8")
    assert not Study(tmp_path).spawned(0).exists() and not Study(tmp_path).child(0, 0).root.exists()  # refused before any step


class CrashInEpoch(L.Callback):
    """Raises at the start of epoch 2 of the run resumed from a checkpoint whose path holds
    ``LANDSCAPE_TEST_CRASH``; without that variable it does nothing, so the study's settings stay the same."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        marker = os.environ.get("LANDSCAPE_TEST_CRASH")
        if marker and marker in str(trainer.ckpt_path) and trainer.current_epoch == 2:
            raise RuntimeError("interrupted")


def test_an_interrupted_study_redoes_nothing_finished_and_ends_as_an_uninterrupted_one(tmp_path: Path, capsys, monkeypatch) -> None:
    overrides = ["--trainer.max_epochs=3", "--trainer.limit_train_batches=4",
                 '--trainer.callbacks+={"class_path": "test_stability.CrashInEpoch"}']

    def run(out: Path):
        return stability(out=out, steps=[0, 6], overrides=overrides, points=3, splits=["test"], accelerator="cpu")

    killed = tmp_path / "killed"
    monkeypatch.setenv("LANDSCAPE_TEST_CRASH", "step6/child1")
    with pytest.raises(RuntimeError, match="interrupted"):
        run(killed)
    interrupted = Study(killed).child(6, 1).last
    assert read_checkpoint(interrupted)["global_step"] == 8  # its epochs 0 and 1 were kept
    capsys.readouterr()
    monkeypatch.delenv("LANDSCAPE_TEST_CRASH")
    resumed = run(killed)
    said = capsys.readouterr().out
    skipped = [line.split()[1].rstrip(":") for line in said.splitlines() if line.endswith("done already, skipped")]
    assert skipped == ["parent", "child_step0_0", "child_step0_1", "line_step0_unaligned", "child_step6_0"]
    assert "[study] child_step6_1: interrupted before, running again" in said
    assert read_checkpoint(interrupted)["global_step"] == 12
    assert [p.name for p in Study(killed).child(6, 1).root.joinpath("lightning_logs").iterdir()] == ["version_0"]
    whole = run(tmp_path / "whole")
    assert resumed.rows == whole.rows
    assert (killed / "barrier/step6/unaligned/path.csv").read_text() == (tmp_path / "whole/barrier/step6/unaligned/path.csv").read_text()


def test_the_command_writes_table_figure_summary_and_tensorboard(tmp_path: Path, capsys) -> None:
    steps = [0, 4, LENGTH]
    main(["stability", f"--out={tmp_path}", f"--steps={steps}", f"--overrides={SHORT}", "--points=3", "--align=weight",
          "--threshold=0.05", "--accelerator=cpu"])
    report = tmp_path / "report"
    rows = read_csv(report / "stability.csv")
    assert [(int(r["step"]), r["split"], r["kind"]) for r in rows] == [
        (k, split, kind) for k in steps for kind in ("unaligned", "aligned") for split in ("train", "test")]
    assert all(float(r["error_barrier"]) >= 0.0 for r in rows)
    assert all(float(r["error_barrier"]) == 0.0 for r in rows if int(r["step"]) == LENGTH)  # spawned at the end: no step left
    summary = json.loads((report / "summary.json").read_text())
    for kind in ("unaligned", "aligned"):
        mine = [float(r["error_barrier"]) for r in rows if r["kind"] == kind and r["split"] == "test"]
        assert summary["error_barrier"][kind] == mine
        assert summary["stable_from"][kind] == next(k for k, b in zip(steps, mine) if b < 0.05)
    assert summary["total_steps"] == LENGTH and summary["threshold"] == 0.05 and summary["split"] == "test"
    assert "| step | split | kind | error_barrier |" in (report / "stability.md").read_text()
    assert (report / "stability.png").stat().st_size > 0
    assert list((report / "tensorboard").glob("events.out.tfevents.*"))
    assert f"unaligned: the test error barrier is below 0.05 from spawn step {summary['stable_from']['unaligned']}" in capsys.readouterr().out
    for k in steps:  # every child starts from the parent's state at k and ends at the parent's length
        for i in (0, 1):
            assert read_checkpoint(Study(tmp_path).child(k, i).last)["global_step"] == LENGTH
