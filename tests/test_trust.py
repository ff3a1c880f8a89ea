"""Files read back never run code: each attack of the issue, the trusted set, and safetensors exports.

Every payload only touches a marker file under the test's tmp_path; each attack asserts that the
marker never appears and that the command exits 2 with one line naming the file and the way to
trust it. Checkpoints are crafted with ``torch.save`` (never through ``save_network``, which trusts
the class it describes for the rest of the process).
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS
from safetensors.torch import save as safetensors_bytes
from torch import nn

from landscape_pl import trust
from landscape_pl.api.export import export
from landscape_pl.cli import LandscapeCLI, main, model_from_checkpoint
from landscape_pl.errors import LandscapeError
from landscape_pl.io import checkpoint_of, load_network, read_checkpoint, save_network
from landscape_pl.models import MLP, TinyNet

DIGITS = ["--data", "landscape_pl.data.DigitsDataModule"]
IMAGES = ["--data", json.dumps({"class_path": "landscape_pl.data.DigitsDataModule", "init_args": {"flatten": False}})]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.logger=false", "--trainer.enable_model_summary=false"]
LINE = ["--points", "3", "--progress", "false", "--tensorboard", "false"]


@pytest.fixture(autouse=True)
def fresh_trust(monkeypatch):
    """Each test starts from the default trusted set: no --trust, no LANDSCAPE_TRUST, nothing remembered."""
    monkeypatch.setattr(trust, "_trusted", set())
    monkeypatch.delenv(trust.ENV, raising=False)


class System:
    """Pickles as a call of os.system: what an attacker puts in a checkpoint's pickle."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def never_appears(marker: Path) -> bool:
    """True when ``marker`` is still absent a moment later (a spawned shell would have created it by then)."""
    time.sleep(0.5)
    return not marker.exists()


def refused(argv: list[str], capsys) -> str:
    """Run the command line; it must exit 2 with one line on stderr, which is returned."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def endpoint_hparams(network: dict, **extra) -> dict:
    return {"_class_path": "landscape_pl.EndpointModule", "_instantiator": "lightning.pytorch.cli.instantiate_module",
            "network": network, "task": "classification", **extra}


def mlp_checkpoint(path: Path, seed: int = 0, **hparams) -> Path:
    """A plain endpoint checkpoint of a digits MLP, its hyper-parameters changed by ``hparams``."""
    torch.manual_seed(seed)
    network = MLP(widths=[16])
    checkpoint = checkpoint_of(network.state_dict(), network._spec, "classification")
    checkpoint["hyper_parameters"].update(hparams)
    torch.save(checkpoint, path)
    return path


@pytest.fixture
def pickled_attack(tmp_path) -> tuple[Path, Path]:
    """A checkpoint whose pickle runs ``touch marker`` when unpickled without weights_only."""
    marker = tmp_path / "pickle_ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"payload": System(f"touch {marker}")}}, path)
    return path, marker


@pytest.mark.parametrize("command", ["interpolate", "validate", "curve"])
def test_a_pickled_payload_never_runs(pickled_attack, command, tmp_path, capsys):
    path, marker = pickled_attack
    argv = {
        "interpolate": ["interpolate", "--start", str(path), "--end", str(path), *DIGITS, "--out", str(tmp_path / "out"), *LINE],
        "validate": ["validate", "--ckpt_path", str(path), *DIGITS, *QUIET],
        "curve": ["curve", "--ckpt", str(path), "--out", str(tmp_path / "out"), *LINE],
    }[command]
    err = refused(argv, capsys)
    assert never_appears(marker)
    assert str(path) in err and "posix.system" in err and "refused" in err


def popen(marker: Path) -> dict:
    """The issue's network spec: subprocess.Popen running a shell command (here, touching ``marker``)."""
    return {"class_path": "subprocess.Popen", "init_args": {"args": f"touch {marker}", "shell": True}}


@pytest.fixture
def spec_attack(tmp_path) -> tuple[Path, Path]:
    """A checkpoint of plain tensors and dicts whose network spec is subprocess.Popen running ``touch marker``."""
    marker = tmp_path / "spec_ran"
    return mlp_checkpoint(tmp_path / "popen.ckpt", network=popen(marker)), marker


@pytest.mark.parametrize("command", ["interpolate", "validate"])
def test_a_network_spec_outside_the_trusted_set_is_never_built(spec_attack, command, tmp_path, capsys):
    path, marker = spec_attack
    argv = {
        "interpolate": ["interpolate", "--start", str(path), "--end", str(path), *DIGITS, "--out", str(tmp_path / "out"), *LINE],
        "validate": ["validate", "--ckpt_path", str(path), *DIGITS, *QUIET],
    }[command]
    err = refused(argv, capsys)
    assert never_appears(marker)
    assert str(path) in err and "'subprocess.Popen'" in err and "--trust subprocess" in err and trust.ENV in err


def test_a_string_index_spec_is_checked_when_connect_resumes(tmp_path, capsys):
    """string.json is plain JSON, yet its spec built every bead's network: resuming must refuse it."""
    marker = tmp_path / "string_ran"
    a, b = (mlp_checkpoint(tmp_path / f"{name}.ckpt", seed) for seed, name in enumerate("ab"))
    folder = tmp_path / "string"
    (folder / "beads").mkdir(parents=True)
    settings = {"algorithm": "greedy", "threshold": 5.0, "alpha": 0.8, "insert_at": "max", "points": 21, "split": "train",
                "bead_steps": 500, "check_every": 10, "zeta": 0.0, "kappa": 0.0, "seed": 0, "ends": [str(a), str(b)]}
    beads = []
    for i, end in enumerate((a, b)):
        (folder / f"beads/bead_{i:04d}.ckpt").write_bytes(end.read_bytes())
        beads.append({"id": i, "file": f"beads/bead_{i:04d}.ckpt", "loss": 1.0, "depth": 0, "steps": 0})
    index = {"settings": settings, "spec": popen(marker), "task": "classification", "beads": beads, "segments": {},
             "progress": {"steps": 0, "rounds": 0}}
    (folder / "string.json").write_text(json.dumps(index))
    err = refused(["connect", "--threshold", "5.0", "--start", str(a), "--end", str(b), *DIGITS, "--out", str(folder),
                   "--tensorboard", "false", "--progress", "false"], capsys)
    assert never_appears(marker)
    assert str(folder / "string.json") in err and "'subprocess.Popen'" in err and "--trust subprocess" in err


@pytest.fixture
def importing_module(tmp_path, monkeypatch) -> tuple[str, Path]:
    """A module on sys.path whose import alone touches a marker: what naming it in a file would run."""
    name = f"payload_{tmp_path.name.replace('-', '_')}"
    marker = tmp_path / "import_ran"
    (tmp_path / f"{name}.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
                                         "def make(params):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name, marker


def test_a_lightning_module_class_path_is_checked_before_it_is_imported(importing_module, tmp_path, capsys):
    name, marker = importing_module
    path = mlp_checkpoint(tmp_path / "module.ckpt", _class_path=f"{name}.Module")
    err = refused(["validate", "--ckpt_path", str(path), *DIGITS, *QUIET], capsys)
    assert never_appears(marker) and name not in sys.modules
    assert str(path) in err and f"'{name}.Module'" in err and f"--trust {name}" in err


def test_a_checkpoint_a_config_file_names_is_checked_too(importing_module, tmp_path, capsys):
    """``ckpt_path`` in a --config file reaches Lightning's hyper-parameter parsing as --ckpt_path does."""
    name, marker = importing_module
    path = mlp_checkpoint(tmp_path / "module.ckpt", _class_path=f"{name}.Module")
    config = tmp_path / "validate.yaml"
    config.write_text(f"ckpt_path: {path}\nmodel:\n  class_path: landscape_pl.EndpointModule\n  init_args:\n"
                      "    network: {class_path: landscape_pl.models.MLP, init_args: {widths: [16]}}\n")
    err = refused(["validate", "--config", str(config), *DIGITS, *QUIET], capsys)
    assert never_appears(marker) and name not in sys.modules
    assert str(path) in err and f"'{name}.Module'" in err


def test_a_callable_hyperparameter_is_not_read_as_an_import_path(importing_module, tmp_path, capsys):
    """jsonargparse reads a string given for a callable-typed argument (the optimizer) as an import path."""
    name, marker = importing_module
    path = mlp_checkpoint(tmp_path / "optimizer.ckpt", optimizer=f"{name}.make")
    err = refused(["fit", "--config", str(CONFIGS / "digits" / "mlp.yaml"), "--ckpt_path", str(path),
                   f"--trainer.default_root_dir={tmp_path / 'run'}", *QUIET], capsys)
    assert never_appears(marker) and name not in sys.modules
    assert str(path) in err and "hyper_parameters.optimizer" in err


@pytest.fixture
def user_network(tmp_path, monkeypatch) -> tuple[str, Path]:
    """A user's own network in a module of their own, and a checkpoint of it (written by another process, as it were)."""
    name = f"usernets_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        "from torch import nn\n\n\nclass Net(nn.Module):\n    def __init__(self, hidden: int = 8) -> None:\n"
        "        super().__init__()\n        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))\n\n"
        "    def forward(self, x):\n        return self.layers(x)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.manual_seed(0)
    state = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10)).state_dict()
    path = tmp_path / "user.ckpt"
    torch.save(checkpoint_of({f"layers.{k}": v for k, v in state.items()}, {"class_path": f"{name}.Net", "init_args": {}},
                             "classification"), path)
    return name, path


def test_a_user_class_loads_once_its_module_is_trusted(user_network, tmp_path, capsys, monkeypatch):
    name, path = user_network
    line = ["interpolate", "--start", str(path), "--end", str(path), *DIGITS, *LINE]
    err = refused([*line, "--out", str(tmp_path / "untrusted")], capsys)
    assert name not in sys.modules, "an untrusted module is never imported"
    assert str(path) in err and f"'{name}.Net'" in err and f"--trust {name}" in err
    main(["--trust", name, *line, "--out", str(tmp_path / "option")])
    assert (tmp_path / "option" / "path.csv").is_file()
    monkeypatch.setattr(trust, "_trusted", set())  # the option held for that process only; now the variable
    monkeypatch.setenv(trust.ENV, f"other.package, {name}")
    assert type(load_network(path).network).__name__ == "Net"
    main([*line, "--out", str(tmp_path / "variable")])
    assert (tmp_path / "variable" / "path.csv").read_text() == (tmp_path / "option" / "path.csv").read_text()


def test_trust_option_forms_and_errors():
    assert trust.take_option(["--trust", "a.b,c", "interpolate", "--trust=d", "--out", "x"]) == ["interpolate", "--out", "x"]
    assert {"a.b", "c", "d"} <= set(trust.trusted_prefixes())
    trust.check("a.b.Net", "f"), trust.check("d.Net", "f")
    with pytest.raises(trust.UntrustedError, match="'a.bc.Net'"):
        trust.check("a.bc.Net", "f")  # a prefix is a whole module name, not the start of one
    with pytest.raises(LandscapeError, match="--trust needs"):
        trust.take_option(["interpolate", "--trust"])


def test_a_trusted_name_that_is_no_module_subclass_is_refused_uncalled(tmp_path):
    path = mlp_checkpoint(tmp_path / "functional.ckpt", network={"class_path": "torch.nn.functional.relu", "init_args": {}})
    with pytest.raises(trust.UntrustedError, match="not a torch.nn.modules.module.Module subclass"):
        load_network(path)


class Local(nn.Module):
    """A user's network defined in their own code (here: this test module)."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.linear = nn.Linear(width, 2)


def test_what_this_process_saved_it_reads_back_without_the_option(tmp_path):
    """A network this process describes for a checkpoint (from the user's code or fit config) is running here
    already, so this process reads that checkpoint back; a spec naming another class gains nothing."""
    spec = {"class_path": f"{__name__}.Local", "init_args": {"width": 3}}
    with pytest.raises(trust.UntrustedError):
        trust.check(spec["class_path"], "f")
    save_network(nn.Linear(3, 2), tmp_path / "other.ckpt", "classification", spec)  # the spec names another class
    with pytest.raises(trust.UntrustedError):
        load_network(tmp_path / "other.ckpt")
    save_network(Local(3), tmp_path / "local.ckpt", "classification", spec)
    assert type(load_network(tmp_path / "local.ckpt").network) is Local


def test_project_checkpoints_hold_only_plain_data(digits_endpoints, tmp_path):
    """What fit writes (weights, optimizer, loops, callbacks, data order) needs no allowed global beyond torch's own."""
    for path in (digits_endpoints.a, digits_endpoints.a_init):
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
        read_checkpoint(path)


def test_safetensors_round_trip_gives_the_checkpoints_numbers(tmp_path):
    """export (command and library), then interpolate and validate from the exports: the checkpoints' numbers."""
    torch.manual_seed(0)
    ends = []
    for name in "ab":
        network = TinyNet(layers=[[4, 3, 1, 1]], in_channels=1)
        with torch.no_grad():
            for module in network.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.normal_(0, 0.1), module.running_var.uniform_(0.5, 1.5)
        ends.append(save_network(network, tmp_path / f"{name}.ckpt", "classification"))
    main(["export", "--ckpt", str(ends[0]), "--out", str(tmp_path / "a")])
    exported = [tmp_path / "a" / "weights.safetensors", export(str(ends[1]), tmp_path / "b")]
    assert exported[1] == tmp_path / "b" / "weights.safetensors"
    for original, copy in zip(ends, exported):
        a, b = load_network(original), load_network(copy)
        assert a.spec == b.spec and a.task == b.task
        assert all(torch.equal(v, b.network.state_dict()[k]) for k, v in a.network.state_dict().items())
    for name, (start, end) in (("ckpt", ends), ("safetensors", exported)):
        main(["interpolate", "--start", str(start), "--end", str(end), *IMAGES, "--out", str(tmp_path / name), *LINE])
    assert (tmp_path / "ckpt" / "path.csv").read_text() == (tmp_path / "safetensors" / "path.csv").read_text()
    assert len(list(csv.DictReader((tmp_path / "ckpt" / "path.csv").open()))) == 6
    metrics = [LandscapeCLI(args=model_from_checkpoint(["validate", "--ckpt_path", str(p), *IMAGES, *QUIET])).trainer.callback_metrics
               for p in (ends[0], exported[0])]
    assert {k: float(v) for k, v in metrics[0].items()} == {k: float(v) for k, v in metrics[1].items()}
    assert set(metrics[0]) == {"val/loss", "val/accuracy"}


def test_export_of_a_module_in_memory_and_its_errors(tmp_path):
    network = MLP(widths=[8])
    path = export(network, tmp_path, task="classification")
    assert type(load_network(path).network) is MLP
    with pytest.raises(LandscapeError, match="pass spec="):
        export(nn.Linear(64, 10), tmp_path / "plain")
    (tmp_path / "no_spec.safetensors").write_bytes(safetensors_bytes({"w": torch.zeros(2)}))
    with pytest.raises(LandscapeError, match="holds no network spec in its metadata"):
        load_network(tmp_path / "no_spec.safetensors")
    with pytest.raises(LandscapeError, match="not a run to resume"):
        model_from_checkpoint(["fit", "--ckpt_path", str(path)])
