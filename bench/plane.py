"""A loss plane through the public API over its floor, side by side in one run (target <= 1.15).

``plane(networks=[θ1, θ2, θ3], data, points=P)``: a P x P grid on the plane through three TinyTen
networks and the three networks themselves (θ written, BatchNorm recomputed on the training loader,
one evaluation pass over it per point) over (P² + 3) x (θ written + BatchNorm recompute + evaluation
pass) in plain torch, on random 32x32 data.

    python bench/plane.py [--points 3] [--samples 256] [--repeats 3] [--device cuda]
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader

from landscape_pl.api.planes import plane
from landscape_pl.models import TinyTen

import plain
import timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    timing.options(parser, repeats=3)
    parser.add_argument("--points", type=int, default=3, help="grid points per axis (G = points^2)")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    device = timing.setup(args)
    loader = DataLoader(plain.cifar_like(args.samples), batch_size=args.batch)
    networks = []
    for seed in range(3):
        torch.manual_seed(seed)
        networks.append(TinyTen().to(device))
    network, anchors = TinyTen().to(device), [plain.parameters(n) for n in networks]
    grid = [(x / (args.points - 1), y / (args.points - 1)) for y in range(args.points) for x in range(args.points)]
    weights = [[1 - x - y, x, y] for x, y in grid] + [[1, 0, 0], [0, 1, 0], [0, 0, 1]]  # the grid, then the anchors
    accelerator = "cuda" if device.type == "cuda" else "cpu"

    def api() -> None:
        plane(networks=networks, data={"train": loader}, points=args.points, splits=("train",), accelerator=accelerator, progress=False)

    def floor() -> None:
        for w in weights:
            plain.point(network, anchors, w, loader, loader, device)

    times = timing.interleave({"plain points (floor)": floor, "plane": api}, args.repeats, device)
    print(f"TinyTen, {args.samples} random 32x32 images in batches of {args.batch}, G = {len(grid)} grid points + 3 anchors")
    timing.print_times(times, per=len(weights), unit="ms")
    timing.print_ratios([("plane / plain points", timing.ratios(times, "plane", "plain points (floor)"), 1.15)])


if __name__ == "__main__":
    main()
