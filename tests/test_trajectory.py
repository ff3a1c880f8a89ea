"""Trajectories: streamed recording, PCA through the Gram matrix, distances, and the clone experiment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape_pl.analysis.trajectory import trajectory_pca
from landscape_pl.callbacks.trajectory import DATA, SnapshotStore
from landscape_pl.cli import main
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network

ROOT = Path(__file__).resolve().parents[1]
RECORDER = '--trainer.callbacks+={"class_path":"landscape_pl.callbacks.TrajectoryRecorder","init_args":{"every_n_epochs":1}}'


def store_of(folder: Path, rows: np.ndarray, shapes=((5, 8), (10,))) -> SnapshotStore:
    store = SnapshotStore.create(folder, [f"p{i}" for i in range(len(shapes))], shapes, None)
    for i, row in enumerate(rows):
        store.append(torch.from_numpy(np.ascontiguousarray(row, dtype=np.float32)), step=i, epoch=i)
    return SnapshotStore(folder)


def test_pca_through_gram_equals_explicit_svd(tmp_path):
    x = np.random.default_rng(0).normal(size=(11, 50)).astype(np.float32)
    stores = [store_of(tmp_path / "a", x[:6]), store_of(tmp_path / "b", x[6:])]
    # 7 columns per chunk: the Gram matrix is assembled from 8 column chunks
    pca = trajectory_pca(stores, ["a", "b"], components=20, chunk_bytes=12 * 11 * 7)
    data = x.astype(np.float64)
    u, s, _ = np.linalg.svd(data - data.mean(axis=0), full_matrices=False)
    assert len(pca.ratio) == 10  # 11 centred snapshots span 10 dimensions
    np.testing.assert_allclose(pca.ratio, s[:10] ** 2 / (s**2).sum(), rtol=1e-10)
    assert pca.ratio.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(pca.variance, s[:10] ** 2 / 10, rtol=1e-10)
    explicit = u[:, :10] * s[:10]
    signs = np.sign((explicit * pca.projections).sum(axis=0))
    np.testing.assert_allclose(pca.projections * signs, explicit, atol=1e-10)
    np.testing.assert_allclose(pca.from_origin, np.linalg.norm(data, axis=1), rtol=1e-12)
    np.testing.assert_allclose(pca.from_init[6:], np.linalg.norm(data[6:] - data[6], axis=1), atol=1e-10)
    assert pca.from_init[0] == 0.0 and pca.from_init[6] == 0.0
    assert pca.final_distances[0, 1] == pytest.approx(np.linalg.norm(data[5] - data[10]), rel=1e-12)
    assert pca.final_distances[0, 0] == 0.0 and pca.run.tolist() == [0] * 6 + [1] * 5


def test_straight_line_has_all_variance_in_one_component(tmp_path):
    rng = np.random.default_rng(1)
    start, direction = rng.normal(size=50), rng.normal(size=50)
    line = np.stack([start + t * direction for t in np.linspace(0, 3, 9) ** 2]).astype(np.float64)
    pca = trajectory_pca([store_of(tmp_path / "line", line)], ["line"])
    assert pca.explained(1) == pytest.approx(1.0, abs=1e-9)
    assert pca.explained(2) == pytest.approx(1.0, abs=1e-9)


def test_bad_input_is_refused_with_its_reason(tmp_path, capsys):
    x = np.random.default_rng(2).normal(size=(3, 50))
    small = store_of(tmp_path / "small", x)
    other = store_of(tmp_path / "other", np.random.default_rng(3).normal(size=(3, 60)), shapes=((6, 8), (12,)))
    with pytest.raises(LandscapeError, match=r"'small' and 'other' record different architectures .*p0 \(5, 8\) vs p0 \(6, 8\)"):
        trajectory_pca([small, other], ["small", "other"])
    single = store_of(tmp_path / "single", x[:1])
    with pytest.raises(LandscapeError, match="at least 2 snapshots, got 1"):
        trajectory_pca([single], ["single"])
    with pytest.raises(SystemExit) as exit_info:
        main(["trajectory", "--runs", json.dumps([str(tmp_path / "small"), str(tmp_path / "other")]), f"--out={tmp_path / 'r'}"])
    assert exit_info.value.code == 2 and "different architectures" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["trajectory", "--runs", json.dumps([str(tmp_path / "nothing")]), f"--out={tmp_path / 'r'}"])
    assert "no trajectory folder" in capsys.readouterr().err


def fit(root: Path, epochs: int, *extra: str, recorder: str = RECORDER) -> None:
    main(["fit", "--config", str(ROOT / "configs/digits/mlp.yaml"), f"--trainer.max_epochs={epochs}",
          f"--trainer.default_root_dir={root}", "--trainer.enable_progress_bar=false",
          "--trainer.enable_model_summary=false", recorder, *extra])


def parameters(checkpoint: Path) -> np.ndarray:
    network = load_network(checkpoint).network
    return torch.cat([p.detach().reshape(-1) for p in network.parameters()]).numpy()


def test_recording_reads_back_bit_exact_survives_interruption_and_resume_appends(tmp_path):
    fit(tmp_path / "run", 2)
    run = tmp_path / "run/lightning_logs/version_0"
    store = SnapshotStore(run / "trajectory")
    assert store.steps == [0, 23, 46] and [s["epoch"] for s in store.snapshots] == [0, 1, 2]
    assert np.array_equal(store.read(0), parameters(run / "checkpoints/init.ckpt"))
    assert np.array_equal(store.read(-1), parameters(run / "checkpoints/last.ckpt"))
    assert store.spec["class_path"] == "landscape_pl.models.mlp.MLP"
    before = [store.read(i).copy() for i in range(3)]
    # a run killed while writing a snapshot leaves a partial one behind the indexed data
    with (run / "trajectory" / DATA).open("ab") as handle:
        handle.write(b"\0" * 1000)
    interrupted = SnapshotStore(run / "trajectory")
    assert len(interrupted) == 3 and all(np.array_equal(interrupted.read(i), before[i]) for i in range(3))
    fit(tmp_path / "run", 3, f"--ckpt_path={run / 'checkpoints/last.ckpt'}")
    resumed = SnapshotStore(run / "trajectory")
    assert resumed.steps == [0, 23, 46, 69]
    assert all(np.array_equal(resumed.read(i), before[i]) for i in range(3))
    assert (run / "trajectory" / DATA).stat().st_size == 4 * resumed.numel * 4
    # the resumed run recorded what an uninterrupted run records
    fit(tmp_path / "straight", 3)
    straight = SnapshotStore(tmp_path / "straight/lightning_logs/version_0/trajectory")
    assert np.array_equal(straight.read(3), resumed.read(3))


def test_recording_every_n_steps_keeps_the_final_weights_too(tmp_path):
    recorder = RECORDER.replace('"every_n_epochs":1', '"every_n_epochs":0,"every_n_steps":10,"dirpath":"%s"' % (tmp_path / "steps"))
    fit(tmp_path / "run", 1, recorder=recorder)
    store = SnapshotStore(tmp_path / "steps")
    assert store.steps == [0, 10, 20, 23]  # 1437 digits in batches of 64: 23 steps; the last one off the schedule
    assert np.array_equal(store.read(-1), parameters(tmp_path / "run/lightning_logs/version_0/checkpoints/last.ckpt"))
    # a fresh run into the same folder starts it over rather than mixing two runs
    first_init = store.read(0).copy()
    fit(tmp_path / "again", 1, "--model.init_args.init_seed=5", recorder=recorder)
    again = SnapshotStore(tmp_path / "steps")
    assert again.steps == [0, 10, 20, 23]
    assert np.array_equal(again.read(0), parameters(tmp_path / "again/lightning_logs/version_0/checkpoints/init.ckpt"))
    assert not np.array_equal(again.read(0), first_init)


def test_clone_experiment_runs_share_their_first_k_epochs_exactly(tmp_path):
    out = tmp_path / "clone"
    main(["trajectory-experiment", "--config", str(ROOT / "configs/trajectory/digits_clone.yaml"), f"--out={out}",
          "--runs=2", "--epochs=3", "--clone_epochs=1", "--progress=false"])
    base = SnapshotStore(out / "base/trajectory")
    clones = [SnapshotStore(out / f"clone{r}/trajectory") for r in range(2)]
    assert [s["epoch"] for s in base.snapshots] == [0, 1]
    for clone in clones:
        assert [s["epoch"] for s in clone.snapshots] == [0, 1, 2, 3]
        assert all(np.array_equal(clone.read(i), base.read(i)) for i in range(2))
    assert not np.array_equal(clones[0].read(2), clones[1].read(2))  # different data orders diverge
    report = json.loads((out / "report/pca.json").read_text())
    assert report["runs"] == ["clone0", "clone1"] and report["snapshots"] == 8
    assert 0 < report["explained_first_2"] <= report["explained_top_10"] <= 1 + 1e-12
    final = [np.asarray(c.read(-1), dtype=np.float64) for c in clones]
    assert report["final_pairwise_distance"]["mean"] == pytest.approx(np.linalg.norm(final[0] - final[1]), rel=1e-9)
    assert report["final_from_origin"]["clone1"] == pytest.approx(np.linalg.norm(final[1]), rel=1e-9)
    assert (out / "report/trajectory.png").stat().st_size > 0
    lines = (out / "report/snapshots.csv").read_text().splitlines()
    assert lines[0].startswith("run,step,epoch,from_origin,from_init,pc1") and len(lines) == 9
    assert (out / "clone0/lightning_logs/version_0/checkpoints/init.ckpt").is_file()


def test_experiment_rerun_with_more_epochs_resumes_its_runs_in_place(tmp_path):
    """An interrupted (here: shorter) run is not taken for finished: the rerun trains it on from its
    last checkpoint, the recorder appends, and the report covers every epoch; a finished run is kept."""
    out = tmp_path / "inits"
    args = ["trajectory-experiment", "--config", str(ROOT / "configs/trajectory/digits_inits.yaml"), f"--out={out}",
            "--runs=1", "--progress=false"]
    main([*args, "--epochs=1"])
    assert json.loads((out / "report/pca.json").read_text())["snapshots"] == 2
    early = SnapshotStore(next(out.glob("*/trajectory")))
    first_two = [early.read(i) for i in range(2)]
    main([*args, "--epochs=3"])
    store = SnapshotStore(next(out.glob("*/trajectory")))
    assert [s["epoch"] for s in store.snapshots] == [0, 1, 2, 3]
    assert all(np.array_equal(store.read(i), first_two[i]) for i in range(2))  # appended, not retrained
    assert json.loads((out / "report/pca.json").read_text())["snapshots"] == 4
    last = next(out.glob("*/lightning_logs/version_0/checkpoints/last.ckpt"))
    stamp = last.stat().st_mtime_ns
    main([*args, "--epochs=3"])
    assert last.stat().st_mtime_ns == stamp and len(list(out.glob("*/lightning_logs/version_*"))) == 1
