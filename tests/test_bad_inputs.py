"""Bad input a user can fix: each gets one ``error: ...`` line (exit 2) naming the file, key or value, and
what to do, before any work or folder; and a profile summary claims nothing its grid does not show."""

from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

import pytest
import torch

import landscape_pl as lp
from landscape_pl.analysis import summarize_profile
from landscape_pl.cli import main
from landscape_pl.data import DigitsDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.io import save_network
from landscape_pl.labels import unambiguous
from landscape_pl.models import MLP
from landscape_pl.paths.evaluate import Row
from landscape_pl.reporting import log_path

ROOT = Path(__file__).resolve().parents[1]
MLP_CONFIG = ROOT / "configs" / "digits" / "mlp.yaml"
RUN = Path("lightning_logs") / "version_0" / "checkpoints"


def error_line(capsys, argv: list[str]) -> str:
    """The one line the CLI prints for ``argv``, checked to be a plain ``error:`` line and exit status 2."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "usage:" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and err.count("error: ") == 1, err
    return last


def network(seed: int, folder: Path, name: str = "net.ckpt") -> Path:
    """A small digits MLP saved as an endpoint checkpoint."""
    torch.manual_seed(seed)
    return save_network(MLP(in_features=64, widths=[8], num_outputs=10), folder / name, "classification")


def test_batch_sizes_must_be_positive_before_any_folder(tmp_path, capsys):
    root = tmp_path / "run"
    line = error_line(capsys, ["fit", "--config", str(MLP_CONFIG), f"--trainer.default_root_dir={root}",
                               "--data.init_args.batch_size=0"])
    assert line == ("error: data batch_size=0: a batch size is a positive number of examples; "
                    "set data.init_args.batch_size to 1 or more")
    assert not root.exists()
    with pytest.raises(LandscapeError, match=r"eval_batch_size=-1: .* set data.init_args.eval_batch_size to 1 or more"):
        DigitsDataModule(eval_batch_size=-1)


@pytest.mark.parametrize("spelling", ["--out", "--out=", "config"])
def test_out_that_is_a_file_is_refused_before_the_work(tmp_path, capsys, spelling):
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    missing = str(tmp_path / "missing.ckpt")  # never read: the --out check comes first
    if spelling == "config":
        config = tmp_path / "interpolate.yaml"
        config.write_text(f"start: {missing}\nend: {missing}\nout: {taken}\n")
        argv = ["interpolate", "--config", str(config)]
    else:
        argv = ["interpolate", "--start", missing, "--end", missing, *([f"--out={taken}"] if spelling == "--out=" else ["--out", str(taken)])]
    assert error_line(capsys, argv) == (f"error: --out {taken} is an existing file, but interpolate needs a folder there "
                                        "for what it writes: give another --out, or move that file away")
    assert taken.read_text() == "not a folder"


def test_out_inside_a_file_and_curve_point_into_a_folder(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("")
    missing = str(tmp_path / "missing.ckpt")
    line = error_line(capsys, ["plane", "--center", missing, "--out", str(taken / "plane")])
    assert line == (f"error: --out {taken / 'plane'} lies inside {taken}, an existing file, but plane needs a folder there "
                    "for what it writes: give another --out, or move that file away")
    line = error_line(capsys, ["curve-point", "--ckpt", missing, "--t", "0.5", "--out", str(tmp_path)])
    assert line == (f"error: --out {tmp_path} is an existing folder, but curve-point writes one checkpoint file: "
                    f"give a file path such as {tmp_path / 'point.ckpt'}")


@pytest.mark.parametrize("command", ["fit", "validate", "interpolate"])
@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_config_is_said_to_be_empty(tmp_path, capsys, command, text):
    config = tmp_path / "empty.yaml"
    config.write_text(text)
    assert error_line(capsys, [command, "--config", str(config)]) == (
        f"error: {config}: the config file is empty (no keys, at most comments); put the command's settings in it "
        f"(python -m landscape_pl {command} --print_config shows them all) or leave out --config")


@pytest.mark.parametrize(("typo", "key", "suggestion"), [
    (("    network:", "    netwrok:"), "model.init_args.netwrok", "network"),
    (("        widths:", "        width:"), "model.init_args.network.init_args.width", "widths"),
    (("    batch_size:", "    batchsize:"), "data.init_args.batchsize", "batch_size"),
    (("  max_epochs:", "  max_epoch:"), "trainer.max_epoch", "max_epochs"),
    (("model:", "modle:"), "modle", "model"),
    (("save_last:", "save_lastt:"), "trainer.callbacks.init_args.save_lastt", "save_last"),
    (("momentum:", "momentun:"), "model.init_args.optimizer.init_args.momentun", "momentum"),
])
def test_unknown_key_in_a_fit_config_is_named_with_the_closest(tmp_path, capsys, typo, key, suggestion):
    config = tmp_path / "typo.yaml"
    config.write_text(MLP_CONFIG.read_text().replace(*typo, 1))
    line = error_line(capsys, ["fit", "--config", str(config), f"--trainer.default_root_dir={tmp_path / 'run'}"])
    assert line == f"error: {config}: unknown key '{key}'; did you mean '{suggestion}'?"
    assert not (tmp_path / "run").exists()


def test_unknown_key_on_the_command_line_and_in_an_analysis_config(tmp_path, capsys):
    line = error_line(capsys, ["fit", "--config", str(MLP_CONFIG), "--model.init_args.netwrok=3"])
    assert line == "error: command line: unknown key 'model.init_args.netwrok'; did you mean 'network'?"
    config = tmp_path / "interpolate.yaml"
    config.write_text("start: a.ckpt\nend: b.ckpt\nstartt: c.ckpt\n")
    assert error_line(capsys, ["interpolate", "--config", str(config)]) == (
        f"error: {config}: unknown key 'startt'; did you mean 'start'?")


def resumable_run(root: Path, epoch_readable: bool) -> Path:
    """A run folder as a killed fit leaves it: a cut-short last.ckpt beside an epoch checkpoint."""
    checkpoints = root / RUN
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.ckpt").write_bytes(b"PK\x03\x04 cut short")
    epoch = checkpoints / "epoch=0-step=23.ckpt"
    if epoch_readable:
        torch.save({"epoch": 0, "state_dict": {"w": torch.zeros(2)}}, epoch)
    else:
        epoch.write_bytes(b"")
    return checkpoints


def test_corrupt_last_checkpoint_offers_the_newest_readable_epoch(tmp_path, capsys):
    argv = ["fit", "--config", str(MLP_CONFIG), f"--trainer.default_root_dir={tmp_path}", "--ckpt_path", "last",
            "--trainer.enable_progress_bar=false"]
    checkpoints = resumable_run(tmp_path, epoch_readable=True)
    assert error_line(capsys, argv) == (
        f"error: --ckpt_path last: {checkpoints / 'last.ckpt'} cannot be read (corrupt or cut short); resume from the newest "
        f"readable epoch checkpoint instead: --ckpt_path {checkpoints / 'epoch=0-step=23.ckpt'} (or copy it over last.ckpt "
        "to go on in place)")


def test_corrupt_last_checkpoint_and_nothing_else_readable(tmp_path, capsys):
    checkpoints = resumable_run(tmp_path, epoch_readable=False)
    line = error_line(capsys, ["fit", "--config", str(MLP_CONFIG), f"--trainer.default_root_dir={tmp_path}",
                               "--ckpt_path=last", "--trainer.enable_progress_bar=false"])
    assert line == (f"error: --ckpt_path last: {checkpoints / 'last.ckpt'} cannot be read (corrupt or cut short), and no "
                    f"epoch=*.ckpt in {checkpoints} reads either: train afresh without --ckpt_path")


def test_last_checkpoint_refused_for_what_it_holds_is_not_called_corrupt(tmp_path, capsys):
    checkpoints = resumable_run(tmp_path, epoch_readable=True)
    torch.save({"epoch": 0, "where": PurePosixPath("runs")}, checkpoints / "last.ckpt")  # an object, not plain data
    line = error_line(capsys, ["fit", "--config", str(MLP_CONFIG), f"--trainer.default_root_dir={tmp_path}",
                               "--ckpt_path=last", "--trainer.enable_progress_bar=false"])
    assert str(checkpoints / "last.ckpt") in line and "PurePosixPath" in line and "corrupt or cut short" not in line


def test_nonfinite_weights_are_named_before_evaluating(tmp_path, capsys):
    torch.manual_seed(0)
    broken = MLP(in_features=64, widths=[8], num_outputs=10)
    with torch.no_grad():
        broken.layers[1].weight[2, 3] = math.nan
        broken.layers[1].weight[4, 0] = math.inf
        broken.layers[3].bias[0] = -math.inf
    path = save_network(broken, tmp_path / "broken.ckpt", "classification")
    line = error_line(capsys, ["interpolate", "--start", str(path), "--end", str(network(1, tmp_path)), "--out", str(tmp_path / "out")])
    assert line == (f"error: {path} has non-finite weights (NaN or inf) in layers.1.weight (2 of 512, first at [2, 3]: nan); "
                    "layers.3.bias (1 of 10, first at [0]: -inf): a loss there means nothing; use a checkpoint from before "
                    "training diverged")
    assert not (tmp_path / "out").exists()
    with pytest.raises(LandscapeError, match=r"^end has non-finite weights \(NaN or inf\) in layers.1.weight \(2 of 512"):
        lp.interpolate(network(1, tmp_path), broken, data=None)  # refused before data is even looked for


def test_plane_names_one_file_under_two_names_by_full_paths(tmp_path, capsys, monkeypatch):
    network(2, tmp_path, "b.ckpt")
    (tmp_path / "alias.ckpt").symlink_to(network(1, tmp_path, "a.ckpt"))
    monkeypatch.chdir(tmp_path)
    line = error_line(capsys, ["plane", "--networks", "[a.ckpt, b.ckpt, alias.ckpt]", "--out", "plane"])
    assert line == (f"error: {tmp_path / 'a.ckpt'} and {tmp_path / 'alias.ckpt'} are the same network (identical weights): "
                    f"they and {tmp_path / 'b.ckpt'} span no plane; choose three different networks")
    assert not (tmp_path / "plane").exists()


def test_plane_names_runs_whose_short_names_collide_by_full_paths(tmp_path, capsys):
    runs = [tmp_path / name / RUN for name in ("x", "y", "z")]
    for k, folder in enumerate(runs):
        network(1 if k < 2 else 2, folder, "last.ckpt")  # x and y: one network trained twice alike
    line = error_line(capsys, ["plane", "--networks", f"[{', '.join(str(r / 'last.ckpt') for r in runs)}]",
                               "--out", str(tmp_path / "plane")])
    x, y, z = (str(r / "last.ckpt") for r in runs)
    assert line == f"error: {x} and {y} are the same network (identical weights): they and {z} span no plane; choose three different networks"
    assert unambiguous([x, y, "c.ckpt"]) == [x, y, "c.ckpt"]
    assert unambiguous(["p/a.ckpt", "q/b.ckpt"]) == ["p/a.ckpt", "q/b.ckpt"]


def test_profile_with_no_point_inside_claims_no_barrier():
    summary = summarize_profile([-0.5, 0.0, 1.0, 1.5], [3.0, 1.0, 0.4, 5.0], [0.1, 0.9, 0.97, 0.2])
    assert summary["barrier"] is None and summary["max_loss_0_1"] is None
    assert summary["note"].startswith("no finite grid point lies strictly inside (0, 1): barrier and max_loss_0_1 are unknown")
    assert summary["loss_start"] == 1.0 and summary["loss_end"] == 0.4  # what the ends do show
    nan_inside = summarize_profile([0.0, 0.5, 1.0], [1.0, math.nan, 1.0], [None] * 3)
    assert nan_inside["barrier"] is None and "note" in nan_inside
    assert summarize_profile([0.0, 0.5, 1.0], [1.0, 2.0, 1.0], [None] * 3)["barrier"] == 1.0


class Recorder:
    """The three TensorBoard calls log_path makes, recorded."""

    def __init__(self) -> None:
        self.scalars: dict[str, float] = {}

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars[tag] = value

    def add_figure(self, tag: str, figure, step: int, close: bool) -> None:
        from landscape_pl.plots import plt

        plt.close(figure)

    def flush(self) -> None:
        pass


def test_tensorboard_skips_unknown_barrier():
    rows = [Row(t, "test", loss, 0.9) for t, loss in ((0.0, 1.0), (1.0, 0.5))]
    recorder = Recorder()
    log_path(recorder, rows, {"test": summarize_profile([0.0, 1.0], [1.0, 0.5], [0.9, 0.9])}, "line")
    assert "line/test/barrier" not in recorder.scalars and "line/test/max_loss_0_1" not in recorder.scalars
    assert recorder.scalars["line/test/min_accuracy_0_1"] == 0.9
