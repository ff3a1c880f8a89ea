"""Endpoint training throughput through Lightning next to a plain PyTorch loop doing the same steps.

TinyTen, batch 128, random 32x32 data held in memory, SGD with momentum, CPU. The Lightning side is
``EndpointModule`` under an ordinary ``Trainer`` with its default logger (TensorBoard, per-step loss and
accuracy), checkpointing and progress bar off; it is timed from the first training epoch's start to the
end of training (setup, and the init.ckpt written at train start, are one-off costs, reported apart).
The plain loop runs the same optimizer steps. Runs are interleaved and repeated; medians are compared.

    python bench/endpoint_throughput.py [--images 2048] [--epochs 2] [--repeats 3] [--threads 1]   # target >= 0.95
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from landscape_pl.modules import EndpointModule

NETWORK = {"class_path": "landscape_pl.models.TinyTen", "init_args": {}}


def sgd(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)


class Clock(L.Callback):
    """Wall time from the first training epoch's start to the end of training."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 0:
            self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def lightning_run(loader: DataLoader, epochs: int) -> tuple[float, float]:
    module = EndpointModule(NETWORK, optimizer=sgd, init_seed=0)
    clock = Clock()
    with tempfile.TemporaryDirectory() as root:
        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, default_root_dir=root, callbacks=[clock],
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        start = time.perf_counter()
        trainer.fit(module, train_dataloaders=loader)
        total = time.perf_counter() - start
    return clock.seconds, total


def plain_run(loader: DataLoader, epochs: int) -> float:
    network = EndpointModule(NETWORK, init_seed=0).network
    optimizer = sgd(network.parameters())
    network.train()
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(network(x), y)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(args.images, 3, 32, 32), torch.randint(0, 10, (args.images,)))
    loader = DataLoader(data, batch_size=args.batch, shuffle=True, generator=torch.Generator().manual_seed(0))
    samples = args.images * args.epochs
    plain_run(loader, 1)  # warm-up
    lightning, totals, plain = [], [], []
    for _ in range(args.repeats):
        seconds, total = lightning_run(loader, args.epochs)
        lightning.append(seconds)
        totals.append(total)
        plain.append(plain_run(loader, args.epochs))
    rates = {name: samples / statistics.median(times) for name, times in (("lightning", lightning), ("plain", plain))}
    for name, times in (("lightning", lightning), ("plain", plain)):
        print(f"{name:>9}: {rates[name]:8.1f} samples/s  (runs: {', '.join(f'{t:.2f}' for t in times)} s)")
    print(f"lightning fit() including setup: median {statistics.median(totals):.2f} s")
    print(f"endpoint training, TinyTen, batch {args.batch}, {samples} samples: "
          f"throughput ratio lightning/plain {rates['lightning'] / rates['plain']:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
