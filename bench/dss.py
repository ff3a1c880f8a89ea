"""Dynamic String Sampling: where the time goes, and what evaluating one segment costs.

For the cubic regression (1-4-4-1 sigmoid MLP) and a digits MLP (64-128-10):
  * one greedy string between two trained ends, with the time share of training beads versus
    evaluating interpolated losses (segments) and the rest (checkpoints, index);
  * one segment evaluation (``points`` grid points through ``Evaluation.points`` over ``paths.line``)
    against its floor, ``points`` x one evaluation pass of a network on the same data. Target: <= 1.2.

python bench/dss.py   (about a minute or two on 2 CPU cores)
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landscape_pl.data import DigitsDataModule, PolynomialDataModule  # noqa: E402
from landscape_pl.models import MLP  # noqa: E402
from landscape_pl.modules.endpoint import reinitialize  # noqa: E402
from landscape_pl.paths import evaluate  # noqa: E402
from landscape_pl.search import Budget, BeadString, Job, greedy  # noqa: E402
greedy_module = importlib.import_module("landscape_pl.search.greedy")
from landscape_pl.search.probe import Probe  # noqa: E402
from landscape_pl.search.training import train_bead  # noqa: E402

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


def segment_cost(name: str, repeats: int = 15) -> dict:
    """Seconds of one segment evaluation and of its floor (points x one evaluation pass), each the
    minimum over interleaved repeats (the least disturbed by other processes on the machine)."""
    make_data, make_net, _, _ = CASES[name]
    data = make_data()
    a, b = make_net(), make_net()
    reinitialize(a, 1)
    reinitialize(b, 2)
    probe = Probe(data, "train", make_net(), [i / (POINTS - 1) for i in range(POINTS)])
    batches, task, network = probe.evaluation.splits["train"], probe.evaluation.task, make_net()
    states = a.state_dict(), b.state_dict()
    probe.segment(*states)  # warm up
    segment_times, pass_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        probe.segment(*states)
        segment_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(POINTS):
            evaluate(network, batches, task)
        pass_times.append(time.perf_counter() - start)
    segment, floor = min(segment_times), min(pass_times)
    return {"segment": segment, "floor": floor, "ratio": segment / floor}


def main() -> None:
    torch.set_num_threads(1)
    print(f"segment evaluation: {POINTS} grid points; floor = {POINTS} x one evaluation pass (same data, same network size)")
    for name in CASES:
        cost = segment_cost(name)
        print(f"  {name:<18} segment {cost['segment'] * 1e3:8.2f} ms   floor {cost['floor'] * 1e3:8.2f} ms   "
              f"ratio {cost['ratio']:.3f} (target <= 1.2)")
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
