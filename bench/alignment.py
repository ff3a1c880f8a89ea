"""Activation alignment cost relative to the forward passes it needs (issue 4's target: <= 1.5).

ratio = time of ``align_activations`` (both forwards with streaming statistics + the linear
assignments) / time of one plain forward pass of both networks over the same alignment subset.
Measured side by side, median of repeats (the machine is shared). Also prints weight matching time.

    python bench/alignment.py [--repeats 5] [--tiny-images 2000] [--vgg-images 256]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from landscape_pl.models import VGG16BN, TinyTen
from landscape_pl.symmetry import align_activations, match_weights, spec_of


@torch.no_grad()
def forward_both(net_a, net_b, batches) -> None:
    for (x,) in batches:
        net_a(x)
        net_b(x)


def measure(name: str, factory, images: int, batch_size: int, repeats: int) -> float:
    torch.manual_seed(0)
    net_a, net_b = factory().eval(), factory().eval()
    spec = spec_of(net_a)
    x = torch.randn(images, 3, 32, 32)
    batches = [(x[i:i + batch_size],) for i in range(0, images, batch_size)]
    forward_both(net_a, net_b, batches[:1])  # warm-up
    plain, aligned = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        forward_both(net_a, net_b, batches)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # untrained nets on noise have dead units; irrelevant here
            align_activations(net_a, net_b, spec, batches)
        aligned.append(time.perf_counter() - start)
    start = time.perf_counter()
    match_weights(net_a.state_dict(), net_b.state_dict(), spec, [n for n, _ in net_a.named_parameters()])
    weights = time.perf_counter() - start
    ratio = statistics.median(a / p for a, p in zip(aligned, plain))
    print(f"{name:8s} {images:5d} images: forward of both {statistics.median(plain):6.2f}s, activation alignment "
          f"{statistics.median(aligned):6.2f}s, ratio {ratio:.2f} (target <= 1.5); weight matching {weights:.2f}s")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny-images", type=int, default=2000)
    parser.add_argument("--vgg-images", type=int, default=256)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    measure("TinyTen", TinyTen, args.tiny_images, 500, args.repeats)
    measure("VGG16BN", VGG16BN, args.vgg_images, 64, args.repeats)


if __name__ == "__main__":
    main()
