"""Endpoint training through Lightning over a plain PyTorch loop doing the same steps (target <= 1.05).

TinyTen, batch 128, random 32x32 data held in memory, SGD with momentum. The Lightning side is
``EndpointModule`` under an ordinary ``Trainer`` (default logger: per-step loss and accuracy); the
floor is a plain loop over the same shuffled loader with the same optimizer. Both are timed from the
end of the first step (warm-up) to the end of the last, set-up excluded; the time ratio <= 1.05 is
a throughput of at least 95% of the plain loop's.

    python bench/endpoint_throughput.py [--images 1024] [--epochs 2] [--repeats 5] [--device cuda]
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from torch.utils.data import DataLoader

from landscape_pl.modules import EndpointModule

import plain
import timing

NETWORK = {"class_path": "landscape_pl.models.TinyTen", "init_args": {}}


def sgd(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    timing.options(parser, repeats=5)
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    device = timing.setup(args)
    loader = DataLoader(plain.cifar_like(args.images), batch_size=args.batch, shuffle=True, generator=torch.Generator().manual_seed(0))

    def lightning() -> timing.Window:
        clock = timing.StepClock(device)
        with tempfile.TemporaryDirectory() as root:
            timing.trainer(device, root, [clock], max_epochs=args.epochs).fit(EndpointModule(NETWORK, optimizer=sgd, init_seed=0), loader)
        return clock.seconds

    def floor() -> timing.Window:
        network = EndpointModule(NETWORK, init_seed=0).network.to(device)
        return plain.train_steps(network, sgd(network.parameters()), (batch for _ in range(args.epochs) for batch in loader), device)

    times = timing.interleave({"plain loop (floor)": floor, "Trainer.fit, EndpointModule": lightning}, args.repeats, device)
    steps = args.epochs * len(loader) - 1
    print(f"endpoint training, TinyTen, batch {args.batch}, {args.epochs} epochs of {args.images} images ({steps} timed steps)")
    timing.print_times(times, per=steps, unit="ms")
    timing.print_ratios([("Lightning step / plain step", timing.ratios(times, "Trainer.fit, EndpointModule", "plain loop (floor)"), 1.05)])


if __name__ == "__main__":
    main()
