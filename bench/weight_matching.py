"""Weight matching: its objective next to the references', what moves it, and its time on ResNet-50.

Objective: on random VGG16-BN pairs (pair s: torch seed s, then two VGG16BN(); pair 0 is
bench/alignment.py's), the gain Σ <θ_A, Pθ_B> − Σ <θ_A, θ_B> over the parameters, the sweeps and the
seconds of ``weight_match`` with the default (alternately forward and backward sweeps), forward sweeps,
Git Re-Basin's seeded random order, and on pair 0 float64 products and other improvement thresholds.
References on pair 0 (../shared/ANCHORS.md): Git Re-Basin's algorithm 118.4, rebasin (PyPI) 120.5.

Time: weight matching of two torchvision ResNet-50 initializations (num_classes=10, the derived spec),
its sweeps, next to one no-grad forward pass of both networks over --images random 32x32 images
(batches of 250), interleaved repeats, median and range.

    python bench/weight_matching.py [--pairs 0 1 2] [--repeats 3] [--images 1000] [--skip-objective] [--skip-resnet]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torchvision
from torch import nn

import landscape_pl.symmetry.weight_matching as matching
from landscape_pl.models import VGG16BN
from landscape_pl.symmetry import spec_of, weight_match

import timing

REFERENCES = {"Git Re-Basin's algorithm": 118.4, "rebasin (PyPI)": 120.5}
BATCH = 250


@contextmanager
def constants(**values) -> Iterator[None]:
    """Module constants of weight matching (PRODUCTS, TOLERANCE) set for one variant."""
    saved = {name: getattr(matching, name) for name in values}
    for name, value in values.items():
        setattr(matching, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(matching, name, value)


def objective(pairs: list[int]) -> None:
    variants = {
        "alternate (default)": ({}, {}),
        "forward": ({"order": "forward"}, {}),
        "random, seed 0 (Git Re-Basin's order)": ({"order": "random"}, {}),
    }
    first_only = {
        "random, seed 1": ({"order": "random", "seed": 1}, {}),
        "random, seed 2": ({"order": "random", "seed": 2}, {}),
        "alternate, float64 products": ({}, {"PRODUCTS": torch.float64}),
        "alternate, threshold 0": ({}, {"TOLERANCE": 0.0}),
        "alternate, threshold 1e-4": ({}, {"TOLERANCE": 1e-4}),
        "random seed 0, float64 products": ({"order": "random"}, {"PRODUCTS": torch.float64}),
    }
    print("weight-matching objective gain over the identity, random VGG16-BN pairs (one run each, seconds on the --clock):")
    rows, gains = [], {}
    for pair in pairs:
        torch.manual_seed(pair)
        net_a, net_b = VGG16BN(), VGG16BN()
        spec, names = spec_of(net_a), [n for n, _ in net_a.named_parameters()]
        for name, (options, values) in (variants | (first_only if pair == pairs[0] else {})).items():
            with constants(**values):
                started = timing.now()
                match = weight_match(net_a.state_dict(), net_b.state_dict(), spec, names, **options)
                seconds = timing.now() - started
            gains.setdefault(name, []).append(match.gain)
            rows.append([str(pair), name, f"{match.gain:.2f}", str(match.sweeps), f"{seconds:.1f}"])
    timing.table(["pair", "variant", "gain", "sweeps", "seconds"], rows)
    if len(pairs) > 1:
        timing.table(["variant (all pairs)", "mean gain", "range"],
                     [[n, f"{statistics.mean(g):.2f}", f"{min(g):.2f}-{max(g):.2f}"] for n, g in gains.items() if len(g) > 1])
    print("  references, pair 0: " + ", ".join(f"{name} {gain}" for name, gain in REFERENCES.items()))


@torch.no_grad()
def forward_both(net_a: nn.Module, net_b: nn.Module, batches: list[torch.Tensor]) -> None:
    for x in batches:
        net_a(x)
        net_b(x)


def resnet50(images: int, repeats: int, device: torch.device) -> timing.Ratio:
    torch.manual_seed(0)
    net_a, net_b = (torchvision.models.resnet50(num_classes=10).to(device).eval() for _ in range(2))
    spec, names = spec_of(net_a), [n for n, _ in net_a.named_parameters()]
    generator = torch.Generator().manual_seed(0)
    batches = [torch.randn(min(BATCH, images - i), 3, 32, 32, generator=generator).to(device) for i in range(0, images, BATCH)]
    state_a, state_b = net_a.state_dict(), net_b.state_dict()
    found: list = []
    forward_both(net_a, net_b, batches[:1])  # warm-up
    times = timing.interleave({f"forward of both, {images} images": lambda: forward_both(net_a, net_b, batches),
                               "weight matching": lambda: found.append(weight_match(state_a, state_b, spec, names))},
                              repeats, device, warm_up=False)
    print(f"ResNet-50 (torchvision, 10 classes, {len(spec.groups)} groups), two initializations:")
    timing.print_times(times)
    print(f"  weight matching: {found[0].sweeps} sweeps (the last changes nothing), objective gain {found[0].gain:.2f}")
    return "ResNet-50: weight matching / forward of both", timing.ratios(times, "weight matching", f"forward of both, {images} images"), None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    timing.options(parser, repeats=3)
    parser.add_argument("--pairs", type=int, nargs="+", default=[0, 1, 2], help="seeds of the VGG16-BN pairs (default 0 1 2)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--skip-objective", action="store_true")
    parser.add_argument("--skip-resnet", action="store_true")
    args = parser.parse_args()
    device = timing.setup(args)
    if not args.skip_objective:
        objective(args.pairs)
    if not args.skip_resnet:
        timing.print_ratios([resnet50(args.images, args.repeats, device)])


if __name__ == "__main__":
    main()
