"""Time of deriving a spec and checking it by construction: resnet50 and a ViT-Small-sized transformer (CPU).

Prints median and range over repeats for each; target <= 3 s each. Run: python bench/spec_derivation.py [repeats]
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
import torchvision

from landscape_pl.symmetry.check import check_spec
from landscape_pl.symmetry.trace import derive, example_input

NETWORKS = {
    "resnet50": lambda: torchvision.models.resnet50(num_classes=10),
    "vit_small_12x384x6": lambda: torchvision.models.VisionTransformer(32, 4, 12, 6, 384, 1536, num_classes=10),
}


def timed(name: str, repeats: int) -> list[float]:
    network = NETWORKS[name]()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        example = example_input(network)
        check_spec(network, derive(network, example), example)
        times.append(time.perf_counter() - start)
    return times


def main(repeats: int = 3) -> None:
    torch.manual_seed(0)
    for name in NETWORKS:
        times = timed(name, repeats)
        print(f"{name}: median {statistics.median(times):.2f}s, range {min(times):.2f}-{max(times):.2f}s over {repeats} (target 3s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
