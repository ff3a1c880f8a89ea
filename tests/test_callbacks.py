"""PathEvaluation: a path's profile evaluated during fit, to files and TensorBoard, without disturbing training."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import lightning as L
import pytest
import torch
from conftest import CONFIGS, fit
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from landscape_pl.callbacks import PathEvaluation
from landscape_pl.cli import main
from landscape_pl.data import DigitsDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network, read_checkpoint, read_path_csv
from landscape_pl.modules import EndpointModule
from landscape_pl.paths import evaluate, line
from landscape_pl.tasks import get_task

CLASSIFICATION = get_task("classification")


def events(run) -> EventAccumulator:
    (path,) = run.glob("events.out.tfevents.*")
    return EventAccumulator(str(path), size_guidance={"images": 0, "scalars": 0}).Reload()


def loss_of(network, split: str = "test") -> float:
    return evaluate(network, DigitsDataModule().eval_dataloader(split), CLASSIFICATION)[0]


def test_watch_path_config_through_the_cli(digits_endpoints, tmp_path):
    run = fit(CONFIGS / "digits" / "mlp_watch_path.yaml", tmp_path, 1, 2)
    folders = sorted(p.name for p in (run / "path").iterdir())
    assert folders == ["epoch_0001", "epoch_0002"]
    for folder in folders:
        rows = read_path_csv(run / "path" / folder / "path.csv")
        assert [r.key for r in rows[::2]] == [round(-0.5 + 0.1 * i, 12) for i in range(21)]
        assert {r.split for r in rows} == {"train", "test"} and len(rows) == 42
        summary = json.loads((run / "path" / folder / "summary.json").read_text())
        assert summary["epoch"] == int(folder[-4:]) and summary["start"] == "init"
        assert {"barrier", "max_loss_0_1", "min_accuracy_0_1", "monotonic", "local_minima_t"} <= set(summary["test"])
        assert (run / "path" / folder / "path.png").stat().st_size > 0
    # t = 0 is the initialization, t = 1 after the last epoch is the trained network
    last = read_path_csv(run / "path" / "epoch_0002" / "path.csv")
    at = {(r.key, r.split): r.loss for r in last}
    assert at[(0.0, "test")] == pytest.approx(loss_of(load_network(run / "checkpoints" / "init.ckpt").network), rel=1e-6)
    assert at[(1.0, "test")] == pytest.approx(loss_of(load_network(run / "checkpoints" / "last.ckpt").network), rel=1e-6)
    # TensorBoard: the summary scalars and the figure at step = epochs completed
    accumulator = events(run)
    for split in ("train", "test"):
        for key in ("barrier", "max_loss_0_1", "min_accuracy_0_1", "mean_accuracy_0_1"):
            assert [e.step for e in accumulator.Scalars(f"path/{split}/{key}")] == [1, 2]
    barrier = [e.value for e in accumulator.Scalars("path/test/barrier")]
    assert barrier[1] == pytest.approx(json.loads((run / "path" / "epoch_0002" / "summary.json").read_text())["test"]["barrier"])
    assert [e.step for e in accumulator.Images("path/profile")] == [1, 2]
    # watching does not change training: the same weights as the unwatched run with the same seeds
    watched, plain = read_checkpoint(run / "checkpoints" / "last.ckpt"), read_checkpoint(digits_endpoints.a)
    for name, value in plain["state_dict"].items():
        assert torch.equal(watched["state_dict"][name], value), name


def small_fit(tmp_path, callback, module=None, epochs: int = 3, **trainer) -> L.Trainer:
    module = module or EndpointModule({"class_path": "landscape_pl.models.MLP", "init_args": {"widths": [16]}}, init_seed=0)
    run = L.Trainer(max_epochs=epochs, limit_train_batches=2, limit_val_batches=0, logger=TensorBoardLogger(tmp_path, name="", version=""),
                    enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[callback], **trainer)
    run.fit(module, DigitsDataModule())
    return run


def test_every_n_epochs_and_fit_end(tmp_path):
    small_fit(tmp_path, PathEvaluation(every_n_epochs=2, points=3, splits=["test"], name="line"), epochs=3)
    assert sorted(p.name for p in (tmp_path / "line").iterdir()) == ["epoch_0002", "epoch_0003"]
    assert [e.step for e in events(tmp_path).Scalars("line/test/barrier")] == [2, 3]
    assert len(read_path_csv(tmp_path / "line" / "epoch_0003" / "path.csv")) == 3


def test_start_checkpoint_and_weights_only(digits_endpoints, tmp_path):
    """start = a checkpoint, move = weights: at t = 0 the weights are the checkpoint's, biases the network's own."""
    callback = PathEvaluation(start=str(digits_endpoints.b), every_n_epochs=0, points=2, splits=["test"], move="weights", hold="end")
    module = EndpointModule({"class_path": "landscape_pl.models.MLP", "init_args": {"widths": [128]}}, init_seed=0)
    small_fit(tmp_path, callback, module, epochs=1)
    rows = read_path_csv(tmp_path / "path" / "epoch_0001" / "path.csv")
    b = load_network(digits_endpoints.b).network
    expected = copy.deepcopy(module.network)
    expected.load_state_dict({k: b.state_dict()[k] if k.endswith("weight") else v for k, v in module.network.state_dict().items()})
    assert rows[0].loss == pytest.approx(loss_of(expected), rel=1e-6)
    assert rows[1].loss == pytest.approx(loss_of(module.network), rel=1e-6)


class LineModule(EndpointModule):
    """A module that names its own path (as curve modules do): the line between two fixed checkpoints."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__({"class_path": "landscape_pl.models.MLP", "init_args": {"widths": [128]}})
        self.a, self.b = load_network(a).network, load_network(b).network

    def evaluation_path(self):
        return self.a, line(self.a.state_dict(), self.b.state_dict())


def test_module_evaluation_path_is_used(digits_endpoints, tmp_path):
    module = LineModule(str(digits_endpoints.a), str(digits_endpoints.b))
    ends = loss_of(load_network(digits_endpoints.a).network), loss_of(load_network(digits_endpoints.b).network)
    small_fit(tmp_path, PathEvaluation(every_n_epochs=0, points=2, splits=["test"]), module, epochs=1)
    rows = read_path_csv(tmp_path / "path" / "epoch_0001" / "path.csv")
    assert [r.loss for r in rows] == pytest.approx(list(ends), rel=1e-6)
    assert module.a.training  # the network's mode is restored after evaluation


def test_resumed_run_keeps_the_initialization_as_start(tmp_path):
    config = CONFIGS / "digits" / "mlp_watch_path.yaml"
    run = fit(config, tmp_path, 3, 1, "--trainer.limit_train_batches=3")
    fit(config, tmp_path, 3, 2, "--trainer.limit_train_batches=3", "--ckpt_path", "last")
    init_loss = loss_of(load_network(run / "checkpoints" / "init.ckpt").network)
    rows = read_path_csv(run / "path" / "epoch_0002" / "path.csv")
    assert [r.loss for r in rows if r.key == 0.0 and r.split == "test"] == pytest.approx([init_loss], rel=1e-6)


def test_bad_settings_are_named():
    with pytest.raises(LandscapeError, match="points=1"):
        PathEvaluation(points=1)
    with pytest.raises(LandscapeError, match="every_n_epochs=-1"):
        PathEvaluation(every_n_epochs=-1)


def test_ddp_ranks_share_the_grid_and_gather_the_same_path(tmp_path, capsys):
    """2 CPU processes (gloo): each rank evaluates its share of t on all the data; the gathered path.csv is
    the path ``interpolate`` computes in one process between the run's init.ckpt and last.ckpt."""
    command = [sys.executable, "-m", "landscape_pl", "fit", "--config", str(CONFIGS / "digits" / "mlp_watch_path.yaml"),
               "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", f"--trainer.default_root_dir={tmp_path}",
               "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.enable_progress_bar=false"]
    done = subprocess.run(command, cwd=CONFIGS.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "lightning_logs" / "version_0"
    watched = read_path_csv(run / "path" / "epoch_0001" / "path.csv")
    main(["interpolate", "--start", str(run / "checkpoints" / "init.ckpt"), "--end", str(run / "checkpoints" / "last.ckpt"),
          "--out", str(tmp_path / "single"), "--t_min=-0.5", "--t_max=1.5", "--points=21", "--accelerator=cpu", "--progress=false"])
    single = read_path_csv(tmp_path / "single" / "path.csv")
    assert [(r.key, r.split) for r in watched] == [(r.key, r.split) for r in single]
    assert [r.loss for r in watched] == pytest.approx([r.loss for r in single], rel=1e-6)
    assert [r.accuracy for r in watched] == [r.accuracy for r in single]
