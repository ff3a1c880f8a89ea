"""Files on disk: names from configs and result files never reach outside a run's folder, every file is
written whole or not at all, an unreadable bead is trained again, and one run at a time writes a folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from torch.utils.data import DataLoader, TensorDataset

from landscape_pl.api.mli import MLIResult
from landscape_pl.api.result import Result
from landscape_pl.api.strings import connect
from landscape_pl.atomic import replacing, write_text
from landscape_pl.cli import main
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network, save_network, write_json, write_path_csv
from landscape_pl.layout import LOCK, RANKS, claim, component, components, inside
from landscape_pl.models import MLP
from landscape_pl.paths.evaluate import Row
from landscape_pl.reporting import write_table
from landscape_pl.search.string import INDEX, BeadString, Segment, open_string
from landscape_pl.study.runner import Stage, run_stages

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


# -- names --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "a/b", "../../victim", "/etc", "a\\b", "nul\0"])
def test_a_name_that_is_not_one_plain_folder_name_is_refused(name: str) -> None:
    with pytest.raises(LandscapeError, match=r"^endpoints: .* cannot name a folder or file .*must not start with '\.'"):
        component(name, "endpoints")


def test_plain_names_pass_and_names_equal_but_for_case_are_refused() -> None:
    assert components(["mlp", "seed1", "θ2", "a.b", "with space"], "endpoints") == ["mlp", "seed1", "θ2", "a.b", "with space"]
    with pytest.raises(LandscapeError, match="'MLP' and 'mlp' would share one folder"):
        components(["MLP", "mlp"], "endpoints")
    with pytest.raises(LandscapeError, match="'a' and 'a' would share one folder"):
        components(["a", "a"], "stage name")


def test_lines_refuses_a_traversing_endpoint_name_before_anything_is_deleted(tmp_path: Path, capsys) -> None:
    """The issue's case: ``endpoints/../../victim/seed1`` was an output without a stamp, so it was removed."""
    out = tmp_path / "study" / "out"
    victim = tmp_path / "study" / "victim" / "seed1"
    victim.mkdir(parents=True)
    (victim / "keep.txt").write_text("mine")
    assert (out / "endpoints" / "../../victim" / "seed1").resolve() == victim.resolve()
    with pytest.raises(SystemExit) as exit_info:
        main(["lines", f"--out={out}", '--endpoints={"../../victim": "configs/digits/mlp.yaml"}', "--accelerator=cpu"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "endpoints: '../../victim' cannot name a folder or file" in err
    assert (victim / "keep.txt").read_text() == "mine"
    assert not out.exists()


def test_lines_refuses_endpoint_names_equal_but_for_case(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["lines", f"--out={tmp_path / 'out'}", "--accelerator=cpu",
              '--endpoints={"MLP": "configs/digits/mlp.yaml", "mlp": "configs/digits/mlp.yaml"}'])
    assert "'MLP' and 'mlp' would share one folder" in capsys.readouterr().err


def stage(name: str, output: Path, calls: list[str]) -> Stage:
    return Stage(name, lambda: (calls.append(name), output.write_text(name)), [output])


def test_runner_checks_every_stage_name_and_output_before_running_or_removing_anything(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    calls: list[str] = []
    first = stage("first", root / "first.txt", calls)
    with pytest.raises(LandscapeError, match=r"stage 'escape' output .*outside.* nothing outside a run's folder is written or removed"):
        run_stages([first, stage("escape", root / ".." / "outside", calls)], root, log=lambda _: None)
    with pytest.raises(LandscapeError, match=r"stage name: '\.\./x' cannot name a folder or file"):
        run_stages([first, stage("../x", root / "x.txt", calls)], root, log=lambda _: None)
    with pytest.raises(LandscapeError, match="'first' and 'FIRST' would share one folder"):
        run_stages([first, stage("FIRST", root / "x.txt", calls)], root, log=lambda _: None)
    (root / "link").parent.mkdir(parents=True)
    (root / "link").symlink_to(outside)
    with pytest.raises(LandscapeError, match=r"stage 'linked' output .*link.* resolves to .*outside"):
        run_stages([first, stage("linked", root / "link", calls)], root, log=lambda _: None)
    assert calls == [] and (outside / "keep.txt").read_text() == "mine"
    with pytest.raises(LandscapeError, match="outside"):
        inside(root, root, "the root itself")


def tiny_string(folder: Path) -> BeadString:
    """A string of two ends and one interior bead (random networks: only the files matter here)."""
    torch.manual_seed(0)
    nets = [MLP(1, [3], 1, "sigmoid") for _ in range(3)]
    string = BeadString.create(folder, {"ends": ["a", "b"]}, (nets[0], nets[1]), (0.1, 0.2), nets[0]._spec, "regression")
    string.add(1, nets[2], 0.3, depth=1)
    return string


def test_a_bead_file_from_the_index_that_leaves_the_string_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "string"
    tiny_string(folder)
    (tmp_path / "victim.ckpt").write_text("mine")
    index = json.loads((folder / INDEX).read_text())
    index["beads"][1]["file"] = "../victim.ckpt"
    (folder / INDEX).write_text(json.dumps(index))
    with pytest.raises(LandscapeError, match=r"string.json: bead 2's file: '\.\.' cannot name a folder or file"):
        open_string(folder, {})
    assert (tmp_path / "victim.ckpt").read_text() == "mine"


def test_mli_labels_from_a_result_file_are_checked_on_load(tmp_path: Path) -> None:
    write_json({"table": [{"run": "../../x", "variant": "all"}], "runs": [], "plateau_tolerance": 0.0}, tmp_path / "mli.json")
    with pytest.raises(LandscapeError, match=r"mli.json table: '\.\._\.\._x' cannot name a folder or file"):
        MLIResult.load(tmp_path)


# -- writes: whole or not at all ----------------------------------------------------------------------------
def network() -> torch.nn.Module:
    torch.manual_seed(0)
    return MLP(1, [3], 1, "sigmoid")


WRITERS = {
    "summary.json": lambda path, new: write_json({"new": new}, path),
    "path.csv": lambda path, new: write_path_csv([Row(0.0, "train", float(new), None)], path),
    "table.csv": lambda path, new: write_table([{"x": new}], ["x"], path.with_suffix("")),
    "bead.ckpt": lambda path, new: save_network(network(), path, "regression", value=new),
    "stamp.json": lambda path, new: write_text(path, str(new)),
}


@pytest.mark.parametrize("name", WRITERS)
def test_a_write_that_fails_before_its_rename_leaves_the_previous_file(tmp_path: Path, monkeypatch, name: str) -> None:
    path = tmp_path / name
    WRITERS[name](path, 1)
    before = path.read_bytes()

    def killed(*args) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        WRITERS[name](path, 2)
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # nor a temporary file left behind
    monkeypatch.undo()
    WRITERS[name](path, 3)
    assert path.read_bytes() != before


def test_a_writer_killed_mid_write_leaves_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    write_json({"old": True}, path)
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from landscape_pl.atomic import replacing
        with replacing({str(path)!r}) as handle:
            handle.write('{{"new": ')
            handle.flush()
            print("writing", flush=True)
            time.sleep(60)
            handle.write("true}}")
    """)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert json.loads(path.read_text()) == {"old": True}


def test_a_failing_block_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "new.txt"
    with pytest.raises(ValueError), replacing(path) as handle:
        handle.write("half")
        raise ValueError("interrupted")
    assert list(tmp_path.iterdir()) == []


# -- an unreadable bead on resume ---------------------------------------------------------------------------
def test_an_unreadable_interior_bead_is_dropped_and_an_unreadable_end_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "string"
    string = tiny_string(folder)
    string.segments = {key: Segment([0.0, 1.0], [0.1, 0.2]) for key in ("0-2", "2-1", "0-1")}
    string.save()
    bead = string.beads[1]
    string.path(bead).write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match=r"bead_0002.ckpt.*; bead 2 is dropped from the string and trained again"):
        resumed = open_string(folder, {})
    assert [b.id for b in resumed.beads] == [0, 1] and list(resumed.segments) == ["0-1"]
    assert [b["id"] for b in json.loads((folder / INDEX).read_text())["beads"]] == [0, 1]
    resumed.path(resumed.beads[-1]).write_bytes(b"")
    with pytest.raises(LandscapeError, match=r"bead_0001.ckpt.*; it is an end of the string in .*remove the folder"):
        open_string(folder, {})


def blobs(n: int = 200, seed: int = 0) -> TensorDataset:
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=generator) * 0.6 + torch.stack([4.0 * y - 2.0, torch.zeros(n)], dim=1)
    return TensorDataset(x, y)


def fitted(seed: int, data: TensorDataset) -> MLP:
    torch.manual_seed(seed)
    net = MLP(2, [8], 2, "relu")
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    x, y = data.tensors
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
    return net


def test_a_resumed_string_retrains_a_bead_it_cannot_read_into_the_same_string(tmp_path: Path) -> None:
    data = blobs()
    a, b = fitted(1, data), fitted(2, data)
    loaders = (DataLoader(data, batch_size=50), DataLoader(blobs(seed=1), batch_size=100))
    options = {"threshold": 1e-4, "optimizer": lambda p: torch.optim.Adam(p, lr=0.05), "bead_steps": 100, "max_beads": 2,
               "progress": False}
    first = connect(a, b, loaders, folder=tmp_path / "string", **options)
    assert first.summary["beads"] >= 1
    newest = max(first.job.string.beads, key=lambda bead: bead.id)
    first.job.string.path(newest).write_bytes(b"\0" * 10)
    with pytest.warns(UserWarning, match="trained again"):
        again = connect(a, b, loaders, folder=tmp_path / "string", **options)
    assert again.summary["bead_losses"] == first.summary["bead_losses"]
    assert torch.equal(again.beads, first.beads)
    load_network(again.job.string.path(newest))


# -- one run at a time --------------------------------------------------------------------------------------
def holder(folder: Path) -> subprocess.Popen:
    """Another process holding ``folder`` until its stdin closes."""
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from landscape_pl.layout import claim
        with claim({str(folder)!r}):
            print("held", flush=True)
            sys.stdin.read()
    """)], env={k: v for k, v in ENV.items() if k not in (*RANKS, "NODE_RANK")},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


class Written(Result):
    def write(self, folder: Path, tensorboard: bool) -> None:
        write_text(folder / "file.txt", "written")

    def plot(self):
        raise NotImplementedError


def test_a_second_run_into_a_held_out_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    root = tmp_path / "out"
    other = holder(root)
    try:
        calls: list[str] = []
        with pytest.raises(LandscapeError) as refused:
            run_stages([stage("first", root / "first.txt", calls)], root, log=lambda _: None)
        message = str(refused.value)
        assert "\n" not in message and message == (
            f"{root} is in use by process {other.pid} on {socket.gethostname()} (started "
            f"{json.loads((root / LOCK).read_text())['started']}); wait for it or choose another --out; "
            f"if no such process runs, delete {root / LOCK}")
        assert calls == [] and not (root / ".stages").exists()
        with pytest.raises(LandscapeError, match="is in use by process"):
            Written().save(root)
        assert not (root / "file.txt").exists()
    finally:
        other.communicate("")
    assert not (root / LOCK).exists()  # released with the process that held it
    run_stages([stage("first", root / "first.txt", calls)], root, log=lambda _: None)
    assert calls == ["first"] and not (root / LOCK).exists()


def test_a_command_refuses_an_out_folder_another_run_holds(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    other = holder(out)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["lines", f"--out={out}", "--accelerator=cpu"])
    finally:
        other.communicate("")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"{out} is in use by process {other.pid}" in err
    assert not (out / "endpoints").exists()


def test_a_lock_left_by_a_process_gone_from_this_host_is_taken_over(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    lock = tmp_path / LOCK
    lock.write_text(json.dumps({"pid": int(gone.stdout), "host": socket.gethostname(), "started": "then"}))
    with claim(tmp_path):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()
    lock.write_text(json.dumps({"pid": int(gone.stdout), "host": "elsewhere", "started": "then"}))
    with pytest.raises(LandscapeError, match=f"in use by process {gone.stdout.strip()} on elsewhere .*delete {lock}"), claim(tmp_path):
        pass


def test_a_study_saving_into_its_own_subfolders_holds_one_claim(tmp_path: Path) -> None:
    root = tmp_path / "study"
    with claim(root):
        Written().save(root / "stage")
        with claim(root):
            assert (root / LOCK).is_file() and not (root / "stage" / LOCK).exists()
        assert (root / LOCK).is_file()
    assert (root / "stage" / "file.txt").read_text() == "written" and not (root / LOCK).exists()
    with claim(tmp_path / "refused"):
        pass
    assert not (tmp_path / "refused").exists()  # a claim that wrote nothing leaves no folder


def test_ranks_launched_beside_rank_zero_leave_the_claim_to_it(tmp_path: Path, monkeypatch) -> None:
    other = holder(tmp_path)
    try:
        for name, rank in (("LOCAL_RANK", "1"), ("SLURM_PROCID", "2"), ("NODE_RANK", "1")):
            with monkeypatch.context() as env:
                env.setenv(name, rank)
                with claim(tmp_path):
                    pass
    finally:
        other.communicate("")


def test_lightning_checkpoints_are_written_whole_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    """A fit writes last.ckpt and init.ckpt through AtomicCheckpointIO; a save that fails midway leaves
    the previous last.ckpt as it was and no temporary file behind."""
    from landscape_pl import fitting

    config = ROOT / "configs" / "digits" / "mlp.yaml"
    options = ["--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", "--trainer.max_epochs=1"]
    last = fitting.fit_run(config, tmp_path / "run", *options)
    before = last.read_bytes()
    assert torch.load(last, weights_only=True)["global_step"] == 2 and (last.parent / "init.ckpt").is_file()

    def broken(checkpoint, handle):  # half a file, then the disk is full
        handle.write(b"half a checkpoint")
        raise OSError("no space left on device")

    monkeypatch.setattr(fitting.torch, "save", broken)
    with pytest.raises(OSError, match="no space left"):
        fitting.fit_run(config, tmp_path / "run", *options[:2], "--trainer.max_epochs=2")
    assert last.read_bytes() == before
    assert not [p for p in last.parent.iterdir() if p.name.endswith(".tmp")]
