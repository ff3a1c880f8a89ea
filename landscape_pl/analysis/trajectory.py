"""PCA and distances of training trajectories, through the T x T Gram matrix of the snapshots.

With T snapshots of P parameters (T << P), the centred Gram matrix G = X_c X_c^T holds everything
the analyses need: its eigenvalues are the components' variances, ``V sqrt(Λ)`` are the snapshots'
coordinates on the components, and ||x_i - x_j||^2 = G_ii + G_jj - 2 G_ij. G is accumulated over
column chunks read from disk, so memory is O(T^2 + T * chunk), never O(P^2) nor O(T * P).
A run is anything read like a SnapshotStore (``Trajectory``): a folder on disk, or snapshots in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from landscape_pl.errors import LandscapeError

CHUNK_BYTES = 64 * 2**20


class Trajectory(Protocol):
    """One run's snapshots as the PCA reads them: parameter names and shapes, each snapshot's step and
    epoch, and float32 column ranges of all snapshots (``callbacks.trajectory.SnapshotStore`` on disk)."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    snapshots: list[dict]
    numel: int

    def __len__(self) -> int: ...

    def columns(self, start: int, stop: int, *, out: np.ndarray) -> np.ndarray: ...


@dataclass
class TrajectoryPCA:
    """Per snapshot: its run, step, epoch, coordinates on the components and distances; per run pair: final distances."""

    runs: list[str]
    run: np.ndarray  # (T,) index into runs
    step: np.ndarray
    epoch: np.ndarray
    variance: np.ndarray  # (n,) variance along every component with any, largest first
    ratio: np.ndarray  # (n,) explained-variance ratios, summing to 1
    projections: np.ndarray  # (T, k) coordinates of the centred snapshots on the components
    from_origin: np.ndarray  # (T,) ||x_i||
    from_init: np.ndarray  # (T,) ||x_i - x_first of its run||
    final_distances: np.ndarray  # (R, R) ||x_final(a) - x_final(b)||

    def explained(self, k: int) -> float:
        """Share of the variance in the first ``k`` components."""
        return float(self.ratio[:k].sum())


def check_stores(stores: Sequence[Trajectory], labels: Sequence[str]) -> None:
    """One architecture, and at least two snapshots in all: what a PCA needs."""
    for store, label in zip(stores[1:], labels[1:]):
        if store.names != stores[0].names or store.shapes != stores[0].shapes:
            diff = next(((a, sa, b, sb) for a, sa, b, sb in zip(stores[0].names, stores[0].shapes, store.names, store.shapes)
                         if a != b or sa != sb), None)
            where = (f"first difference at {diff[0]} {diff[1]} vs {diff[2]} {diff[3]}" if diff
                     else f"{len(stores[0].names)} vs {len(store.names)} tensors")
            raise LandscapeError(f"trajectories {labels[0]!r} and {label!r} record different architectures ({where}); "
                                 "analyse them separately")
    total = sum(len(s) for s in stores)
    if total < 2:
        raise LandscapeError(f"PCA needs at least 2 snapshots, got {total} in {list(labels)}; record more "
                             "(TrajectoryRecorder every_n_epochs / every_n_steps) or add runs")


def gram(stores: Sequence[Trajectory], chunk_bytes: int = CHUNK_BYTES, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Centred Gram matrix (T, T) and squared norms (T,) of all snapshots, in float64, reading column chunks."""
    total = sum(len(s) for s in stores)
    numel = stores[0].numel
    width = max(1, min(numel, chunk_bytes // (12 * total)))
    block = np.empty((total, width), dtype="<f4")
    g = torch.zeros(total, total, dtype=torch.float64)
    norms = torch.zeros(total, dtype=torch.float64)
    starts = range(0, numel, width)
    for start in tqdm(starts, desc="trajectory gram", disable=not progress, leave=False):
        stop = min(start + width, numel)
        row = 0
        for store in stores:
            store.columns(start, stop, out=block[row:row + len(store)])
            row += len(store)
        x = torch.from_numpy(block[:, : stop - start]).double()  # torch: its BLAS is several times NumPy's here
        norms += (x * x).sum(dim=1)
        x -= x.mean(dim=0)
        g += x @ x.T
    return g.numpy(), norms.numpy()


def trajectory_pca(
    stores: Sequence[Trajectory], labels: Sequence[str], components: int = 10,
    chunk_bytes: int = CHUNK_BYTES, progress: bool = False,
) -> TrajectoryPCA:
    """PCA of all snapshots of all runs together, plus distances from origin, from init and between finals."""
    check_stores(stores, labels)
    g, norms = gram(stores, chunk_bytes, progress)
    eigenvalues, vectors = np.linalg.eigh(g)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, vectors = np.clip(eigenvalues[order], 0.0, None), vectors[:, order]
    if eigenvalues.sum() <= 0:
        raise LandscapeError(f"the snapshots of {list(labels)} are all identical: there is no variance to analyse")
    nonzero = int((eigenvalues > eigenvalues[0] * 1e-12).sum())
    keep = min(components, nonzero)
    total = len(g)
    run = np.concatenate([np.full(len(s), k) for k, s in enumerate(stores)])
    first = np.concatenate([np.full(len(s), sum(len(t) for t in stores[:k])) for k, s in enumerate(stores)])
    last = np.array([sum(len(t) for t in stores[: k + 1]) - 1 for k in range(len(stores))])
    diag = np.diag(g)
    squared = lambda i, j: np.clip(diag[i] + diag[j] - 2 * g[i, j], 0.0, None)  # noqa: E731 - local shorthand
    return TrajectoryPCA(
        runs=list(labels),
        run=run,
        step=np.array([s["step"] for store in stores for s in store.snapshots]),
        epoch=np.array([s["epoch"] for store in stores for s in store.snapshots]),
        variance=eigenvalues[:nonzero] / (total - 1),
        ratio=eigenvalues[:nonzero] / eigenvalues.sum(),
        projections=vectors[:, :keep] * np.sqrt(eigenvalues[:keep]),
        from_origin=np.sqrt(norms),
        from_init=np.sqrt(squared(np.arange(total), first)),
        final_distances=np.sqrt(squared(last[:, None], last[None, :])),
    )


def summary_of(pca: TrajectoryPCA) -> dict:
    """The headline numbers (pca.json): explained variance, and each run's final distances from origin and init."""
    finals = pca.final_distances[np.triu_indices(len(pca.runs), 1)]
    last = [int(np.nonzero(pca.run == r)[0][-1]) for r in range(len(pca.runs))]
    return {
        "runs": pca.runs,
        "snapshots": int(len(pca.run)),
        "explained_first_2": pca.explained(2),
        "explained_top_10": pca.explained(10),
        "explained_ratio": [float(r) for r in pca.ratio[:10]],
        "final_from_origin": {pca.runs[r]: float(pca.from_origin[i]) for r, i in enumerate(last)},
        "final_from_init": {pca.runs[r]: float(pca.from_init[i]) for r, i in enumerate(last)},
        "final_pairwise_distance": {"mean": float(finals.mean()), "min": float(finals.min()), "max": float(finals.max())}
        if len(finals) else None,
    }
