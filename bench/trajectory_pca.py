"""Time and peak memory of trajectory PCA through the T x T Gram matrix (issue 7).

    python bench/trajectory_pca.py                       # 200 snapshots x 1M parameters (800 MB on disk)
    python bench/trajectory_pca.py --snapshots 50 --parameters 200000

Writes a random-walk trajectory with the TrajectoryRecorder's store into a temporary folder, then
runs the PCA reading column chunks. Peak memory is the larger of the tracemalloc peak (NumPy buffers)
and the growth of the process's peak RSS during the PCA; target: under 3 x the snapshots' size on
disk, with no P x P (nor T x P) matrix in memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landscape_pl.analysis.trajectory import trajectory_pca  # noqa: E402
from landscape_pl.callbacks.trajectory import DATA, SnapshotStore  # noqa: E402


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshots", type=int, default=200)
    parser.add_argument("--parameters", type=int, default=1_000_000)
    parser.add_argument("--chunk_mb", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = SnapshotStore.create(folder, ["theta"], [(args.parameters,)], None)
        generator = torch.Generator().manual_seed(0)
        theta = torch.randn(args.parameters, generator=generator)
        drift = torch.randn(args.parameters, generator=generator)
        start = time.perf_counter()
        for t in range(args.snapshots):  # a drifting random walk: a few components dominate, as in training
            theta += 0.05 * drift + 0.01 * torch.randn(args.parameters, generator=generator)
            store.append(theta, step=t, epoch=t)
        write_s = time.perf_counter() - start
        disk = (Path(folder) / DATA).stat().st_size
        print(f"{args.snapshots} snapshots x {args.parameters:,} parameters: {disk / 2**20:.0f} MiB on disk "
              f"(written in {write_s:.1f} s)")
        rss_before = max_rss_bytes()
        tracemalloc.start()
        start = time.perf_counter()
        pca = trajectory_pca([SnapshotStore(folder)], ["walk"], chunk_bytes=args.chunk_mb * 2**20)
        seconds = time.perf_counter() - start
        _, traced = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_growth = max(0, max_rss_bytes() - rss_before)
    peak = max(traced, rss_growth)
    print(f"PCA: {seconds:.1f} s; first 2 components {100 * pca.explained(2):.2f}%, top 10 {100 * pca.explained(10):.2f}%")
    print(f"peak memory: tracemalloc {traced / 2**20:.0f} MiB, peak-RSS growth {rss_growth / 2**20:.0f} MiB")
    print(f"peak memory / snapshots on disk = {peak / disk:.3f}  (target < 3; a T x P float64 copy alone would be 2)")


if __name__ == "__main__":
    main()
