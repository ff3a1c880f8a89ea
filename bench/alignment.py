"""Activation alignment and weight matching, side by side in one run, with their objectives and peak memory.

Time (target <= 1.5): ``align_activations`` (both forwards with streaming statistics + the linear
assignments) over one plain no-grad forward of both networks over the same images (the floor);
``weight_match`` is timed in the same interleaved repeats. Objectives: the mean correlation of
corresponding units (mean over groups) before / after activation alignment, and Σ <θ_A, P θ_B> over
the parameters before (identity) / after weight matching. Peak memory: activation alignment of a
TinyTen pair on --memory-images random images made batch by batch (as a loader streams them), each
count in a fresh process; target: flat (memory the call adds at the largest count / at the smallest
<= 1.25: runs differ by about ±40 MB of allocator jitter on ~250 MB, while keeping anything per image
would grow 16x), where the research code's NeuronAlignment grows 1.17 -> 4.94 GB from 2,048 to 8,192 images.

    python bench/alignment.py [--repeats 3] [--tiny-images 2048] [--vgg-images 256] [--memory-images 512 2048 8192] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import warnings
from collections.abc import Iterator

import torch
from torch import nn

from landscape_pl.models import VGG16BN, TinyTen
from landscape_pl.symmetry import align_activations, permute, signature, spec_of, weight_match

import timing

MEMORY_BATCH = 256


class Stream:
    """``images`` seeded random 3x32x32 images in batches, made as they are read: the data takes no memory."""

    def __init__(self, images: int, batch: int, device: torch.device) -> None:
        self.images, self.batch, self.device = images, batch, device

    def __iter__(self) -> Iterator[tuple[torch.Tensor]]:
        generator = torch.Generator().manual_seed(0)
        for start in range(0, self.images, self.batch):
            yield (torch.randn(min(self.batch, self.images - start), 3, 32, 32, generator=generator).to(self.device),)


def pair(factory: type[nn.Module], device: torch.device) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    return factory().to(device).eval(), factory().to(device).eval()


@torch.no_grad()
def forward_both(net_a: nn.Module, net_b: nn.Module, batches) -> None:
    for (x,) in batches:
        net_a(x)
        net_b(x)


def align(net_a: nn.Module, net_b: nn.Module, batches):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # untrained networks on noise have dead units; irrelevant to the cost
        return align_activations(net_a, net_b, spec_of(net_a), batches)


def align_streamed(images: int, device: str) -> None:
    """Activation alignment of a TinyTen pair on ``images`` streamed images (run in its own process)."""
    net_a, net_b = pair(TinyTen, torch.device(device))
    align(net_a, net_b, Stream(images, MEMORY_BATCH, torch.device(device)))


def inner_product(state_a: dict, state_b: dict, names: list[str]) -> float:
    """The weight-matching objective Σ <θ_A, θ_B> over ``names``."""
    return sum(float((state_a[n].double() * state_b[n].double()).sum()) for n in names)


def timed(name: str, factory: type[nn.Module], images: int, batch: int, repeats: int, device: torch.device) -> timing.Ratio:
    net_a, net_b = pair(factory, device)
    spec = spec_of(net_a)
    batches = list(Stream(images, batch, device))
    names = [n for n, _ in net_a.named_parameters()]
    state_a, state_b = net_a.state_dict(), net_b.state_dict()
    results: dict = {}

    def activations() -> None:
        results["activation"] = align(net_a, net_b, batches)

    def weights() -> None:
        results["weights"] = weight_match(state_a, state_b, spec, names)

    forward_both(net_a, net_b, batches[:1])  # warm-up (a whole untimed repeat would cost as much as a timed one)
    times = timing.interleave({"forward of both (floor)": lambda: forward_both(net_a, net_b, batches),
                               "align_activations": activations, "weight_match": weights}, repeats, device, warm_up=False)
    print(f"{name}, {images} random images in batches of {batch}:")
    timing.print_times(times)
    perms, correlations = results["activation"]
    before, after = (statistics.mean(signature(correlations, p).values()) for p in (None, perms))
    print(f"  mean correlation of corresponding units: {before:.4f} before, {after:.4f} after activation alignment")
    identity = inner_product(state_a, state_b, names)
    matched = inner_product(state_a, permute(state_b, spec, results["weights"].permutations), names)
    print(f"  weight-matching objective: {identity:.2f} before, {matched:.2f} after (gain {matched - identity:.2f}, "
          f"{results['weights'].sweeps} sweeps; bench/weight_matching.py compares sweep orders)")
    return f"{name}: activation alignment / forward of both", timing.ratios(times, "align_activations", "forward of both (floor)"), 1.5


def memory(counts: list[int], device: torch.device) -> timing.Ratio:
    print(f"peak memory of activation alignment, TinyTen pair, batches of {MEMORY_BATCH}, each count in a fresh process "
          f"({'CUDA allocated' if device.type == 'cuda' else 'RSS'}):")
    peaks = {images: timing.peak_memory(align_streamed, images, str(device), device=device) for images in counts}
    timing.table(["images", "peak", "added by the call"],
                 [[str(n), timing.megabytes(m.peak), timing.megabytes(m.added)] for n, m in peaks.items()])
    largest, smallest = peaks[max(counts)].added, peaks[min(counts)].added
    return f"memory added, {max(counts)} / {min(counts)} images", [largest / smallest], 1.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    timing.options(parser, repeats=3)
    parser.add_argument("--tiny-images", type=int, default=2048)
    parser.add_argument("--vgg-images", type=int, default=256)
    parser.add_argument("--memory-images", type=int, nargs="*", default=[512, 2048, 8192], help="image counts of the memory rows (none: skip)")
    args = parser.parse_args()
    device = timing.setup(args)
    rows = [timed("TinyTen", TinyTen, args.tiny_images, 256, args.repeats, device),
            timed("VGG16BN", VGG16BN, args.vgg_images, 64, args.repeats, device)]
    if args.memory_images:
        rows.append(memory(args.memory_images, device))
    timing.print_ratios(rows)


if __name__ == "__main__":
    main()
