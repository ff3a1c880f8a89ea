"""PAM's two phases against each other: a permutation-phase step / a curve-phase step (target <= 2).

    python bench/pam.py                      # TinyTen, batch 128, CPU, random 32x32 data
    python bench/pam.py --steps 10 --repeats 3

A permutation step adds to a curve step the soft permutation of θ2 (a matmul per permuted axis),
its backward, and the projections of every P onto doubly stochastic matrices. PAMModule (its defaults,
apart from the schedule) runs both phases in one ``Trainer.fit``, alternating (1 epoch each, --repeats
iterations): the phases are interleaved by PAM itself, and each iteration gives one ratio (mean
permutation step / mean curve step, the first step of each phase a warm-up). Memory of the relaxed
permutations is printed too: Σ M_l² floats, independent of the data.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import lightning as L
import torch

from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.io import save_network
from landscape_pl.models import TinyTen
from landscape_pl.modules import PAMModule

import plain
import timing


class RandomImages(LandscapeDataModule):
    """Random 32x32 RGB images with random labels, in memory."""

    def __init__(self, samples: int, batch_size: int) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=batch_size)
        self.data = plain.cifar_like(samples)

    def make_split(self, split, train_transforms):
        return self.data


class StepTimer(L.Callback):
    """Wall time of every training step, by (iteration, phase)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.times = device, {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        timing.synchronize(self.device)
        self.start = timing.now()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        timing.synchronize(self.device)
        self.times.setdefault(module.phase(), []).append(timing.now() - self.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    timing.options(parser, repeats=3)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per phase and iteration")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    device = timing.setup(args)
    with tempfile.TemporaryDirectory() as folder:
        ends = []
        for seed in (1, 2):
            torch.manual_seed(seed)
            ends.append(str(save_network(TinyTen(), Path(folder) / f"tinyten_{seed}.ckpt", "classification")))
        module = PAMModule(*ends, iterations=args.repeats, permutation_epochs=1, curve_epochs=1)
        timer = StepTimer(device)
        trainer = timing.trainer(device, folder, [timer], max_epochs=2 * args.repeats, limit_train_batches=args.steps + 1)
        trainer.fit(module, datamodule=RandomImages(args.batch * (args.steps + 1), args.batch))
    steps = {phase: [statistics.mean(timer.times[(i, phase)][1:]) for i in range(args.repeats)] for phase in ("permutation", "curve")}
    timing.print_times(steps, unit="ms")
    floats = sum(p.numel() for p in module.perms)
    print(f"  relaxed permutations: {len(module.perms)} matrices, {floats} floats ({floats * 4 / 1e6:.2f} MB), independent of data size")
    timing.print_ratios([("permutation step / curve step", [p / c for p, c in zip(steps["permutation"], steps["curve"])], 2.0)])


if __name__ == "__main__":
    main()
