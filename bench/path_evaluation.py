"""A 31-point line on TinyTen through the public API over its floor, side by side in one run (target <= 1.02).

``lp.interpolate(start, end, {"train": ..., "test": ...}, t=31 points on [-1, 2], splits=("test",))`` on
random CIFAR-shaped data (--images training images for the BatchNorm recompute, as many test images to
evaluate), over the floor: 31 x (θ(t) written + BatchNorm recompute over the train loader + one
evaluation pass over the test loader) in plain torch. The floor's losses are checked against the API's
rows, so both are known to do the same work.

    python bench/path_evaluation.py [--images 256] [--batch 128] [--repeats 5] [--device cuda]
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch.utils.data import DataLoader

import landscape_pl as lp
from landscape_pl.models import TinyTen

import plain
import timing

POINTS = 31


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    timing.options(parser, repeats=5)
    parser.add_argument("--images", type=int, default=256, help="images of each split")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    device = timing.setup(args)
    if not hasattr(lp, "interpolate"):
        raise SystemExit("landscape_pl.interpolate does not exist yet: this benchmark measures the public API")
    data = {split: DataLoader(plain.cifar_like(args.images, seed), batch_size=args.batch) for seed, split in enumerate(["train", "test"])}
    torch.manual_seed(1)
    start, end = TinyTen(), TinyTen()
    network = copy.deepcopy(start).to(device)
    anchors = [plain.parameters(start.to(device)), plain.parameters(end.to(device))]
    ts = [-1.0 + 3.0 * k / (POINTS - 1) for k in range(POINTS)]
    accelerator = "cuda" if device.type == "cuda" else "cpu"
    results: dict = {}

    def api() -> None:
        results["api"] = lp.interpolate(start, end, data, t=ts, bn_batches=None, splits=("test",), accelerator=accelerator,
                                        progress=False)

    def floor() -> None:
        results["floor"] = [plain.point(network, anchors, [1 - t, t], data["train"], data["test"], device) for t in ts]

    times = timing.interleave({"plain points (floor)": floor, "lp.interpolate": api}, args.repeats, device)
    print(f"{POINTS}-point line, TinyTen, {args.images} train + {args.images} test images of 3x32x32, batch {args.batch}")
    timing.print_times(times, per=POINTS, unit="ms")
    losses = {row.key: row.loss for row in results["api"].rows if row.split == "test"}
    gap = max(abs(losses[t] - loss) / max(1.0, abs(loss)) for t, loss in zip(ts, results["floor"]))
    print(f"  largest relative loss difference, API vs floor, over the {POINTS} points: {gap:.1e}")
    timing.print_ratios([("lp.interpolate / plain points", timing.ratios(times, "lp.interpolate", "plain points (floor)"), 1.02)])


if __name__ == "__main__":
    main()
