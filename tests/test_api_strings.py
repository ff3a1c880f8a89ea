"""The string (DSS) and trajectory analyses as library calls: the same numbers as their commands' files,
networks and snapshots given in memory, and a finished string resumed without training."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from landscape_pl.api.strings import StringResult, connect
from landscape_pl.api.trajectories import TrajectoryResult, trajectory_pca
from landscape_pl.callbacks.trajectory import SnapshotStore, parameters_of
from landscape_pl.cli import main
from landscape_pl.data import PolynomialDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network, read_path_csv, save_network
from landscape_pl.models import MLP
from landscape_pl.modules.endpoint import reinitialize
from landscape_pl.plots import plt
from landscape_pl.search import CONNECTED, NOT_CONNECTED, training
from landscape_pl.search.probe import Probe

QUADRATIC = json.dumps({"class_path": "landscape_pl.data.PolynomialDataModule", "init_args": {"polynomial": "quadratic"}})
LOW = 2e-3
SETTINGS = {"threshold": LOW, "bead_steps": 300, "check_every": 10, "train_ends": True}


def adam(lr: float):
    return lambda parameters: torch.optim.Adam(parameters, lr=lr)


def relative(summary: dict, folder: Path) -> dict:
    """The summary with bead files relative to the string's folder, so two folders' strings compare."""
    return summary | {"bead_files": [str(Path(f).relative_to(folder)) for f in summary["bead_files"]]}


def digests(files: list[str]) -> dict[str, str]:
    return {f: hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files}


# -- DSS: the command's files and the library's result -----------------------------------------------------
@pytest.fixture(scope="module")
def ends(tmp_path_factory) -> dict[str, Path]:
    """Two 1-4-4-1 sigmoid regressors of the quadratic (section 4.1), trained to 1e-3 with the bead trainer."""
    root = tmp_path_factory.mktemp("api_strings")
    data = PolynomialDataModule("quadratic")
    files = {}
    for seed in (1, 3):
        network = MLP(1, [4, 4], 1, "sigmoid")
        reinitialize(network, seed)
        probe = Probe(data, "train", MLP(1, [4, 4], 1, "sigmoid"), [0.0, 1.0])
        _, loss = training.train_bead(network, data, "regression", adam(0.05), probe.loss, 1e-3, 800, 20, seed, root / "t", "cpu")
        assert loss < 1e-3, f"fixture did not train: {loss}"
        files[f"seed{seed}"] = save_network(network, root / f"end{seed}.ckpt", "regression")
    return {"start": files["seed1"], "end": files["seed3"], "root": root}


@pytest.fixture(scope="module")
def command_and_library(ends) -> tuple[Path, StringResult]:
    """The same string made by ``connect`` on the command line and by ``api.strings.connect``."""
    command = ends["root"] / "command"
    main(["connect", "--start", str(ends["start"]), "--end", str(ends["end"]), "--out", str(command), "--data", QUADRATIC,
          "--optimizer", json.dumps({"class_path": "torch.optim.Adam", "init_args": {"lr": 0.01}}), "--progress", "false",
          "--tensorboard", "false", *[f"--{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in SETTINGS.items()]])
    result = connect(str(ends["start"]), str(ends["end"]), PolynomialDataModule("quadratic"), folder=ends["root"] / "library",
                     optimizer=adam(0.01), progress=False, **SETTINGS)
    return command, result


def test_library_string_is_the_command_string_to_the_last_digit(ends, command_and_library):
    command, result = command_and_library
    library = ends["root"] / "library"
    assert result.summary["verdict"] == CONNECTED and result.summary["beads"] >= 1 and result.folder == library
    written = json.loads((command / "summary.json").read_text())
    assert relative(written, command) == relative(json.loads(json.dumps(result.summary)), library)
    assert read_path_csv(command / "path.csv") == result.rows
    # the index of the resumable string, and the beads themselves, are the command's
    index = json.loads((library / "string.json").read_text())
    assert index == json.loads((command / "string.json").read_text())
    assert list(digests(result.summary["bead_files"]).values()) == list(digests(written["bead_files"]).values())
    # and save() writes the command's files
    report = result.save(ends["root"] / "report")
    assert (report / "path.csv").read_bytes() == (command / "path.csv").read_bytes()
    assert (report / "summary.json").read_text() == (command / "summary.json").read_text().replace(str(command), str(library))
    assert (report / "pca.png").stat().st_size > 0 and (report / "path.png").stat().st_size > 0
    for figure in (result.plot(), result.pca_plot()):
        assert figure.axes
        plt.close(figure)


def test_finished_string_resumes_without_training(ends, command_and_library, monkeypatch):
    _, first = command_and_library
    before = digests(first.summary["bead_files"])

    def no_training(*args, **kwargs):
        raise AssertionError("a finished string was trained again")

    monkeypatch.setattr(training, "fit", no_training)
    again = connect(str(ends["start"]), str(ends["end"]), PolynomialDataModule("quadratic"), folder=first.folder,
                    optimizer=adam(0.01), progress=False, **SETTINGS)
    assert again.summary == first.summary and again.rows == first.rows
    assert torch.equal(again.beads, first.beads)
    assert digests(first.summary["bead_files"]) == before
    with pytest.raises(LandscapeError, match="holds a string between"):
        connect(str(ends["end"]), str(ends["start"]), PolynomialDataModule("quadratic"), folder=first.folder, progress=False, **SETTINGS)


# -- DSS on networks in memory and plain DataLoaders --------------------------------------------------------
def blobs(n: int = 200, seed: int = 0) -> TensorDataset:
    """Two Gaussian blobs in the plane, classes alternating."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=generator) * 0.6 + torch.stack([4.0 * y - 2.0, torch.zeros(n)], dim=1)
    return TensorDataset(x, y)


def fitted(seed: int, data: TensorDataset, steps: int = 150) -> MLP:
    """A 2-8-2 ReLU classifier, full-batch Adam from ``seed``."""
    torch.manual_seed(seed)
    network = MLP(2, [8], 2, "relu")
    optimizer = torch.optim.Adam(network.parameters(), lr=0.05)
    x, y = data.tensors
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(network(x), y).backward()
        optimizer.step()
    return network


@pytest.fixture(scope="module")
def in_memory(tmp_path_factory) -> dict:
    data = blobs()
    a, b = fitted(1, data), fitted(2, data)
    states = [copy.deepcopy(n.state_dict()) for n in (a, b)]
    folder = tmp_path_factory.mktemp("in_memory") / "string"
    loaders = (DataLoader(data, batch_size=50), DataLoader(blobs(seed=1), batch_size=100))
    result = connect(a, b, loaders, threshold=1e-4, folder=folder, optimizer=adam(0.05), bead_steps=100, max_beads=4, progress=False)
    return {"a": a, "b": b, "states": states, "loaders": loaders, "folder": folder, "result": result}


def test_modules_and_dataloaders_connect_and_save(in_memory, tmp_path):
    result = in_memory["result"]
    assert result.summary["verdict"] in (CONNECTED, NOT_CONNECTED) and result.summary["beads"] >= 1
    assert all(torch.equal(in_memory[k].state_dict()[name], value) for k, state in zip("ab", in_memory["states"])
               for name, value in state.items())  # the caller's modules are copied, never trained
    bead = load_network(result.summary["bead_files"][1])  # beads are ordinary checkpoints of the module's spec
    assert isinstance(bead.network, MLP) and bead.task == "classification"
    out = result.save(tmp_path / "report")
    assert {p.name for p in out.iterdir()} == {"summary.json", "path.csv", "path.png", "pca.png"}
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(result.summary))
    assert read_path_csv(out / "path.csv") == result.rows


def test_in_memory_string_resumes_and_refuses_other_networks(in_memory, monkeypatch):
    monkeypatch.setattr(training, "fit", lambda *args, **kwargs: pytest.fail("a finished string was trained again"))
    kwargs = {"threshold": 1e-4, "folder": in_memory["folder"], "optimizer": adam(0.05), "bead_steps": 100, "max_beads": 4,
              "progress": False}
    again = connect(in_memory["a"], in_memory["b"], in_memory["loaders"], **kwargs)
    assert again.summary == in_memory["result"].summary and again.rows == in_memory["result"].rows
    with pytest.raises(LandscapeError, match="holds a string between"):
        connect(in_memory["a"], fitted(3, blobs()), in_memory["loaders"], **kwargs)


def test_module_without_a_spec_is_asked_for_one(tmp_path):
    data = blobs()
    plain = [torch.nn.Sequential(torch.nn.Linear(2, 2)) for _ in range(2)]
    with pytest.raises(LandscapeError, match=r"records no spec.*pass spec="):
        connect(*plain, DataLoader(data, batch_size=50), threshold=1.0, folder=tmp_path / "plain", progress=False)
    with pytest.raises(LandscapeError, match="does not rebuild"):
        connect(*plain, DataLoader(data, batch_size=50), threshold=1.0, folder=tmp_path / "plain", progress=False,
                spec={"class_path": "landscape_pl.models.mlp.MLP", "init_args": {"in_features": 2, "widths": [3], "num_outputs": 2}})


# -- trajectories: the command's files, and snapshots in memory ----------------------------------------------
def snapshots(seed: int, steps: int = 6) -> list[MLP]:
    """A run's snapshots as a notebook keeps them: copies of a 2-8-2 classifier after each Adam step from init."""
    data = blobs(seed=seed)
    torch.manual_seed(seed)
    network = MLP(2, [8], 2, "relu")
    optimizer = torch.optim.Adam(network.parameters(), lr=0.05)
    kept = [copy.deepcopy(network)]
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(network(data.tensors[0]), data.tensors[1]).backward()
        optimizer.step()
        kept.append(copy.deepcopy(network))
    return kept


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict:
    """Two runs kept in memory, and the same snapshots recorded to trajectory folders as TrajectoryRecorder writes them."""
    root = tmp_path_factory.mktemp("trajectories")
    runs = {"run0": snapshots(1), "run1": snapshots(2, steps=4)}
    for name, kept in runs.items():
        names, shapes, _ = parameters_of(kept[0])
        store = SnapshotStore.create(root / name / "trajectory", names, shapes, None)
        for i, network in enumerate(kept):
            store.append(parameters_of(network)[2], step=i, epoch=i)
    return {"root": root, "runs": runs}


def test_library_trajectory_is_the_command_report_to_the_last_digit(recorded):
    root = recorded["root"]
    main(["trajectory", "--runs", json.dumps([str(root)]), f"--out={root / 'command'}", "--tensorboard=false", "--progress=false"])
    result = trajectory_pca([root], progress=False)
    assert isinstance(result, TrajectoryResult) and result.pca.runs == ["run0", "run1"]
    assert json.loads((root / "command" / "pca.json").read_text()) == json.loads(json.dumps(result.summary))
    report = result.save(root / "library")
    for name in ("pca.json", "snapshots.csv", "final_distances.csv"):
        assert (report / name).read_bytes() == (root / "command" / name).read_bytes()
    assert (report / "trajectory.png").stat().st_size > 0
    figure = result.plot()
    assert len(figure.axes) == 4  # paths, distances, final distances and its colour bar
    plt.close(figure)


def test_snapshots_in_memory_equal_the_recorded_ones(recorded):
    on_disk = trajectory_pca([recorded["root"] / "run0", recorded["root"] / "run1"], progress=False)
    modules, states = recorded["runs"]["run0"], [n.state_dict() for n in recorded["runs"]["run1"]]
    in_memory = trajectory_pca([modules, states], progress=False)  # one run of modules, one of state dicts
    assert in_memory.summary == {k: v for k, v in on_disk.summary.items() if k != "folders"}
    for field in ("run", "step", "epoch", "variance", "ratio", "projections", "from_origin", "from_init", "final_distances"):
        assert np.array_equal(getattr(in_memory.pca, field), getattr(on_disk.pca, field)), field
    named = trajectory_pca([modules, states], labels=["a", "b"], progress=False)
    assert named.pca.runs == ["a", "b"]
    with pytest.raises(LandscapeError, match="not a mix"):
        trajectory_pca([recorded["root"] / "run0", modules])
    with pytest.raises(LandscapeError, match="3 labels for 2 runs"):
        trajectory_pca([modules, states], labels=["a", "b", "c"])
