"""Speed of loss planes against the plain network, measured side by side in one run (issue 7).

    python bench/plane.py                       # TinyTen, random 32x32 data, 3x3 grid, CPU
    python bench/plane.py --points 6 --samples 2000 --repeats 5

Ratio (target <= 1.15): evaluating G grid points of the plane through three networks (plane
coefficients, θ written into the network, BatchNorm recomputed, one evaluation pass: the shared
``Evaluation.points``) / G x (BatchNorm pass + evaluation pass) of the plain network. Variants run
interleaved; the reported ratio is the median of the per-repeat ratios (the machine is shared).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landscape_pl.models import TinyTen  # noqa: E402
from landscape_pl.paths import Evaluation, evaluate, recompute_batchnorm  # noqa: E402
from landscape_pl.paths.plane import grid, plane_through  # noqa: E402
from landscape_pl.tasks import get_task  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=3, help="grid points per axis (G = points^2)")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = TensorDataset(torch.randn(args.samples, 3, 32, 32), torch.randint(0, 10, (args.samples,)))
    loader = DataLoader(data, batch_size=args.batch)
    states = []
    for seed in range(3):
        torch.manual_seed(seed)
        states.append(TinyTen().state_dict())
    network = TinyTen()
    names = [n for n, _ in network.named_parameters()]
    surface = plane_through(states, ["θ1", "θ2", "θ3"], geometry=names)
    xs, ys = grid(surface, args.points, 0.2)
    keys = [(x, y) for y in ys for x in xs]
    task = get_task("classification")
    evaluation = Evaluation(splits={"train": loader}, task=task, bn_data=loader, progress=False)

    def plane() -> None:
        evaluation.path(network, surface, keys)

    def floor() -> None:
        for _ in keys:
            recompute_batchnorm(network, loader)
            evaluate(network, loader, task)

    print(f"TinyTen, {args.samples} random 32x32 images in batches of {args.batch}, G = {len(keys)} grid points, "
          f"{torch.get_num_threads()} threads")
    floor(), plane()  # warm-up
    times: dict[str, list[float]] = {"plane": [], "floor": []}
    for _ in range(args.repeats):
        for name, run in (("floor", floor), ("plane", plane)):
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"  {name:<6} median {statistics.median(values):7.2f} s  ({statistics.median(values) / len(keys) * 1000:.0f} ms/point)")
    ratio = statistics.median(p / f for p, f in zip(times["plane"], times["floor"]))
    print(f"plane / floor (G x (BN pass + eval pass)) = {ratio:.3f}  (target <= 1.15)")


if __name__ == "__main__":
    main()
