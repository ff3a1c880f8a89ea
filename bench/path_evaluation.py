"""Cost of evaluating a path against its floor: T x (one BatchNorm pass + one evaluation pass).

A straight line of T = 31 points between two TinyTen networks on random 32x32 data (CPU), evaluated by
``Evaluation.points`` (what ``interpolate`` and ``PathEvaluation`` run) next to a plain loop that does only
the unavoidable work per point: reset BatchNorm statistics, one no-grad train-mode pass over the BN data,
one eval pass with the loss and accuracy. Runs are interleaved and repeated; the ratio of medians is printed.

    python bench/path_evaluation.py [--points 31] [--images 1024] [--repeats 3] [--threads 1]   # target <= 1.15
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from landscape_pl.models import TinyTen
from landscape_pl.paths import Evaluation, line
from landscape_pl.paths.batchnorm import batchnorm_layers
from landscape_pl.tasks import get_task


@torch.no_grad()
def floor(network: torch.nn.Module, points: int, bn_data: DataLoader, eval_data: DataLoader) -> None:
    """The least any implementation must do per point (the weights are left as they are: writing is the overhead)."""
    layers = batchnorm_layers(network)
    for _ in range(points):
        for m in layers:
            m.reset_running_stats()
            m.momentum = None
        network.train()
        for x, _ in bn_data:
            network(x)
        network.eval()
        loss, correct = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.long)
        for x, y in eval_data:
            out = network(x)
            loss += F.cross_entropy(out, y, reduction="sum").double()
            correct += (out.argmax(1) == y).sum()
        (loss / len(eval_data.dataset)).item(), correct.item()


def library(network: torch.nn.Module, points: int, bn_data: DataLoader, eval_data: DataLoader, path) -> None:
    evaluation = Evaluation({"test": eval_data}, get_task("classification"), bn_data=bn_data, progress=False)
    ts = [-1.0 + 3.0 * i / (points - 1) for i in range(points)]
    evaluation.path(network, path, ts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=31)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = [TensorDataset(torch.randn(args.images, 3, 32, 32), torch.randint(0, 10, (args.images,))) for _ in range(2)]
    bn_data, eval_data = (DataLoader(d, batch_size=args.batch) for d in data)
    a, b = TinyTen(), TinyTen()
    path = line(a.state_dict(), b.state_dict(), [n for n, _ in a.named_parameters()])
    network = TinyTen()
    runs = {"floor": lambda: floor(network, args.points, bn_data, eval_data),
            "library": lambda: library(network, args.points, bn_data, eval_data, path)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    floor(network, 1, bn_data, eval_data)  # warm-up
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name:>8}: median {statistics.median(values):.2f} s  (runs: {', '.join(f'{v:.2f}' for v in values)})")
    ratio = statistics.median(times["library"]) / statistics.median(times["floor"])
    print(f"path evaluation, T={args.points}, TinyTen, {args.images}+{args.images} images of 3x32x32, batch {args.batch}: "
          f"ratio to floor {ratio:.3f} (target <= 1.15)")


if __name__ == "__main__":
    main()
