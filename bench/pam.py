"""PAM's two phases against each other: a permutation-phase step / a curve-phase step (issue 5).

    python bench/pam.py                      # TinyTen, batch 128, CPU, random 32x32 data
    python bench/pam.py --steps 10 --repeats 3

A permutation step adds to a curve step the soft permutation of θ2 (a matmul per permuted axis),
its backward, and the projections of every P onto doubly stochastic matrices; target ratio <= 2.
Both phases run in one Trainer, alternating (1 epoch each, ``repeats`` iterations); the ratio is
the median over iterations of (mean permutation step) / (mean curve step). Memory of the relaxed
permutations is printed too: Σ M_l² floats, independent of the data.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landscape_pl.data.base import LandscapeDataModule  # noqa: E402
from landscape_pl.io import save_network  # noqa: E402
from landscape_pl.models import TinyTen  # noqa: E402
from landscape_pl.modules import PAMModule  # noqa: E402

warnings.filterwarnings("ignore")


class RandomImages(LandscapeDataModule):
    """Random 32x32 RGB images with random labels, in memory."""

    def __init__(self, samples: int, batch_size: int) -> None:
        super().__init__(batch_size=batch_size, eval_batch_size=batch_size)
        generator = torch.Generator().manual_seed(0)
        self.data = TensorDataset(torch.randn(samples, 3, 32, 32, generator=generator), torch.randint(0, 10, (samples,), generator=generator))

    def make_split(self, split, train_transforms):
        return self.data


class StepTimer(L.Callback):
    """Wall time of every training step, by phase."""

    def __init__(self) -> None:
        self.times: dict[tuple[int, str], list[float]] = {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.times.setdefault(module.phase(), []).append(time.perf_counter() - self.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="steps per phase and iteration")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="PAM iterations (each times both phases)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as folder:
        ends = []
        for seed in (1, 2):
            torch.manual_seed(seed)
            ends.append(str(save_network(TinyTen(), Path(folder) / f"tinyten_{seed}.ckpt", "classification")))
        module = PAMModule(*ends, iterations=args.repeats, permutation_epochs=1, curve_epochs=1,
                           objective_batches=1, objective_points=2,
                           optimizer=lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9))
        timer = StepTimer()
        trainer = L.Trainer(max_epochs=2 * args.repeats, limit_train_batches=args.steps + 1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[timer], accelerator="cpu", default_root_dir=folder)
        trainer.fit(module, datamodule=RandomImages(args.batch * (args.steps + 1), args.batch))
    ratios = []
    for iteration in range(args.repeats):
        perm, curve = timer.times[(iteration, "permutation")][1:], timer.times[(iteration, "curve")][1:]  # first step warms up
        ratios.append(statistics.mean(perm) / statistics.mean(curve))
        print(f"iteration {iteration}: permutation step {statistics.mean(perm) * 1e3:.1f} ms, curve step {statistics.mean(curve) * 1e3:.1f} ms")
    floats = sum(p.numel() for p in module.perms)
    print(f"relaxed permutations: {len(module.perms)} matrices, {floats} floats ({floats * 4 / 1e6:.2f} MB), independent of data size")
    print(f"permutation-phase step / curve-phase step: {statistics.median(ratios):.2f} (target <= 2)")


if __name__ == "__main__":
    main()
