"""Dynamic String Sampling: where the time goes, and what evaluating one segment costs.

For the cubic regression (1-4-4-1 sigmoid MLP) and a digits MLP (64-128-10):
  * one greedy string between two trained ends, with the time share of training beads versus
    evaluating interpolated losses (segments) and the rest (checkpoints, index);
  * one segment evaluation (``points`` grid points through ``Evaluation.points`` over ``paths.line``)
    against its floor, ``points`` x (θ written + one evaluation pass) in plain torch on the same data,
    in interleaved repeats. Target: <= 1.2.

    python bench/dss.py [--repeats 30]   (about a minute or two on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from landscape_pl.data import DigitsDataModule, PolynomialDataModule
from landscape_pl.models import MLP
from landscape_pl.modules.endpoint import reinitialize
from landscape_pl.search import BeadString, Budget, Job, greedy
from landscape_pl.search.probe import Probe
from landscape_pl.search.training import train_bead

import plain
import timing

greedy_module = importlib.import_module("landscape_pl.search.greedy")

POINTS = 21
CASES = {
    # name: (data module, network factory, optimizer, threshold)
    "cubic 1-4-4-1": (lambda: PolynomialDataModule("cubic"), lambda: MLP(1, [4, 4], 1, "sigmoid"),
                      lambda p: torch.optim.Adam(p, lr=0.01), 0.03),
    "digits 64-128-10": (lambda: DigitsDataModule(), lambda: MLP(64, [128], 10, "relu"),
                         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9), 0.05),
}


class Stopwatch:
    """Total seconds spent inside the wrapped function."""

    def __init__(self, function):
        self.function, self.seconds = function, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def trained_end(data, make_net, optimizer, threshold: float, seed: int, probe: Probe, root: Path):
    """An end trained from ``seed`` to half the threshold with the bead trainer."""
    network = make_net()
    reinitialize(network, seed)
    _, loss = train_bead(network, data, data.task, optimizer, probe.loss, 0.5 * threshold, 3000, 20, seed, root, "cpu")
    return network, loss


def string_time_shares(name: str, root: Path) -> dict:
    make_data, make_net, optimizer, threshold = CASES[name]
    data = make_data()
    probe = Probe(data, "train", make_net(), [i / (POINTS - 1) for i in range(POINTS)])
    ends = [trained_end(data, make_net, optimizer, threshold, seed, probe, root) for seed in (1, 2)]
    string = BeadString.create(root / "string", {"threshold": threshold}, [e[0] for e in ends], [e[1] for e in ends],
                               make_net()._spec, data.task)
    job = Job(string, probe, data, optimizer, Budget(beads=12, depth=6), threshold, 0.8, "max", 1000, 10, 0, "cpu")
    segments, training = Stopwatch(probe.segment), Stopwatch(greedy_module.train_bead)
    probe.segment, greedy_module.train_bead = segments, training
    start = time.perf_counter()
    try:
        reason = greedy(job)
    finally:
        greedy_module.train_bead = train_bead
    total = time.perf_counter() - start
    return {"beads": string.interior, "verdict": reason or "connected", "total": total,
            "train": training.seconds, "segments": segments.seconds, "steps": string.progress["steps"]}


def mse(outputs: torch.Tensor, targets: torch.Tensor, reduction: str) -> torch.Tensor:
    return F.mse_loss(outputs.reshape(targets.shape), targets, reduction=reduction)


def segment_cost(name: str, repeats: int) -> timing.Ratio:
    """One segment evaluation against its floor, interleaved: POINTS x (θ written + one evaluation pass) in plain torch."""
    make_data, make_net, _, _ = CASES[name]
    data = make_data()
    a, b = make_net(), make_net()
    reinitialize(a, 1)
    reinitialize(b, 2)
    ts = [i / (POINTS - 1) for i in range(POINTS)]
    probe = Probe(data, "train", make_net(), ts)
    batches, network, cpu = probe.evaluation.splits["train"], make_net(), torch.device("cpu")
    states, anchors = (a.state_dict(), b.state_dict()), [plain.parameters(a), plain.parameters(b)]
    loss = F.cross_entropy if data.task == "classification" else mse

    def floor() -> None:
        for t in ts:
            plain.write(plain.parameters(network), anchors, [1 - t, t])
            plain.eval_pass(network, batches, cpu, loss)

    times = timing.interleave({"floor": floor, "segment": lambda: probe.segment(*states)}, repeats)
    print(f"  {name}:")
    timing.print_times(times, unit="ms")
    return f"{name}: segment / floor", timing.ratios(times, "segment", "floor"), 1.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    timing.options(parser, repeats=30, device=False)
    args = parser.parse_args()
    timing.setup(args)
    print(f"segment evaluation: {POINTS} grid points; floor = {POINTS} x (θ written + one evaluation pass) in plain torch")
    timing.print_ratios([segment_cost(name, args.repeats) for name in CASES])
    print("greedy string: time shares")
    for name in CASES:
        with tempfile.TemporaryDirectory() as folder:
            r = string_time_shares(name, Path(folder))
        rest = r["total"] - r["train"] - r["segments"]
        print(f"  {name:<18} {r['beads']:2d} beads, {r['steps']:4d} steps, {r['verdict']}: total {r['total']:6.2f} s = "
              f"training beads {r['train'] / r['total']:5.1%} + evaluating segments {r['segments'] / r['total']:5.1%} "
              f"+ rest {rest / r['total']:5.1%}")


if __name__ == "__main__":
    main()
