"""What ``spec_of`` costs: deriving a spec from the traced graph and checking it by construction (CPU).

For resnet50 (32x32 inputs) and a 12-layer ViT-Small-sized transformer (hidden 384, 6 heads, 32x32
images in 4x4 patches): the time of ``spec_of`` as users call it (example input guessed, derivation,
state-dict fit, permuted-copy check), split into its parts, next to one float32 forward pass of the
same network on the same example for scale. Target: ``spec_of`` <= 3 s each (tracing-based tools in
the field take minutes on large models).

    python bench/spec_derivation.py [--repeats 5] [--clock cpu]
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torchvision
from timing import interleave, options, print_times, setup, table

from landscape_pl.symmetry import check_spec, spec_of
from landscape_pl.symmetry.trace import derive, example_input

NETWORKS = {
    "resnet50": lambda: torchvision.models.resnet50(num_classes=10),
    "vit_small_12x384x6": lambda: torchvision.models.VisionTransformer(32, 4, 12, 6, 384, 1536, num_classes=10),
}
TARGET = 3.0


def variants(name: str, network: torch.nn.Module, example: torch.Tensor, spec) -> dict:
    """``spec_of`` whole and its parts, and one forward for scale."""
    return {
        f"{name}: spec_of": lambda: spec_of(network),
        f"{name}: example input": lambda: example_input(network),
        f"{name}: derive": lambda: derive(network, example),
        f"{name}: check": lambda: check_spec(network, spec, example),
        f"{name}: one forward": lambda: torch.no_grad()(network)(example),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options(parser, repeats=5, device=False)
    args = parser.parse_args()
    setup(args)
    torch.manual_seed(0)
    verdicts = []
    for name, make in NETWORKS.items():
        network = make().eval()
        example = example_input(network)
        spec = derive(network, example)
        times = interleave(variants(name, network, example, spec), args.repeats)
        print_times(times)
        median = statistics.median(times[f"{name}: spec_of"])
        verdicts.append([name, f"{len(spec.groups)}", f"{median:.2f}", f"<= {TARGET:g}", "PASS" if median <= TARGET else "FAIL"])
    table(["network", "groups", "spec_of median s", "target", ""], verdicts)


if __name__ == "__main__":
    main()
