"""Trajectory PCA through the T x T Gram matrix: time over a plain-torch floor, and peak memory.

Writes a random-walk trajectory with the TrajectoryRecorder's store into a temporary folder, then times
``trajectory_pca`` (column chunks read from disk) against its floor, interleaved: the same centred
float64 Gram matrix from a memory-mapped view of the snapshots file in plain torch, chunk by chunk, and
one eigendecomposition (target <= 1.2). Peak memory: the PCA alone in a fresh process; target: the
memory it adds < 3 x the snapshots' size on disk (a T x P float64 copy alone would be 2), no P x P
matrix.

    python bench/trajectory_pca.py                       # 200 snapshots x 1M parameters (800 MB on disk)
    python bench/trajectory_pca.py --snapshots 50 --parameters 200000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from landscape_pl.analysis.trajectory import trajectory_pca
from landscape_pl.callbacks.trajectory import DATA, SnapshotStore

import timing


def pca(folder: str, chunk_bytes: int) -> None:
    trajectory_pca([SnapshotStore(folder)], ["walk"], chunk_bytes=chunk_bytes)


def floor(folder: str, snapshots: int, parameters: int, chunk_bytes: int) -> None:
    """Centred Gram matrix of the (T, P) float32 file, column chunk by chunk, then its eigenvectors."""
    data = np.memmap(Path(folder) / DATA, dtype="<f4", mode="r", shape=(snapshots, parameters))
    width = max(1, chunk_bytes // (12 * snapshots))
    g = torch.zeros(snapshots, snapshots, dtype=torch.float64)
    for start in range(0, parameters, width):
        x = torch.from_numpy(np.array(data[:, start:start + width])).double()
        x -= x.mean(dim=0)
        g += x @ x.T
    np.linalg.eigh(g.numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    timing.options(parser, repeats=3, device=False)
    parser.add_argument("--snapshots", type=int, default=200)
    parser.add_argument("--parameters", type=int, default=1_000_000)
    parser.add_argument("--chunk_mb", type=int, default=64)
    args = parser.parse_args()
    timing.setup(args)
    chunk = args.chunk_mb * 2**20
    with tempfile.TemporaryDirectory() as folder:
        store = SnapshotStore.create(folder, ["theta"], [(args.parameters,)], None)
        generator = torch.Generator().manual_seed(0)
        theta = torch.randn(args.parameters, generator=generator)
        drift = torch.randn(args.parameters, generator=generator)
        start = time.perf_counter()
        for t in range(args.snapshots):  # a drifting random walk: a few components dominate, as in training
            theta += 0.05 * drift + 0.01 * torch.randn(args.parameters, generator=generator)
            store.append(theta, step=t, epoch=t)
        disk = (Path(folder) / DATA).stat().st_size
        print(f"{args.snapshots} snapshots x {args.parameters:,} parameters: {timing.megabytes(disk)} on disk "
              f"(written in {time.perf_counter() - start:.1f} s)")
        times = timing.interleave({"plain Gram + eigh (floor)": lambda: floor(folder, args.snapshots, args.parameters, chunk),
                                   "trajectory_pca": lambda: pca(folder, chunk)}, args.repeats)
        timing.print_times(times)
        memory = timing.peak_memory(pca, folder, chunk)
    print(f"  peak RSS of the PCA in a fresh process {timing.megabytes(memory.peak)}, added by the call {timing.megabytes(memory.added)}")
    timing.print_ratios([("trajectory_pca / floor", timing.ratios(times, "trajectory_pca", "plain Gram + eigh (floor)"), 1.2),
                         ("PCA memory added / snapshots on disk", [memory.added / disk], 3.0)])


if __name__ == "__main__":
    main()
