"""A REPAIRed line on TinyTen (BatchNorm) through the public API over its floor (target <= 1.05).

``lp.interpolate(start, end, data, t=POINTS points on [0, 1], splits=("test",), repair=True)`` on random
CIFAR-shaped data, over the floor written here in plain torch: the two ends measured once (θ written,
BatchNorm pass, one statistics pass each), then per point θ(t) written + one BatchNorm pass + one
statistics pass (every BatchNorm output's per-channel mean and std, each batch corrected in flight to
the ends' mixture on that batch) + the correction folded into the BatchNorm affine + one evaluation
pass. The floor's losses are checked against the API's rows, so both are known to do the same work.

    python bench/repair.py [--images 256] [--batch 128] [--repeats 3] [--device cuda]
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn
from torch.utils.data import DataLoader

import landscape_pl as lp
from landscape_pl.models import TinyTen

import plain
import timing

POINTS = 11


def norms(network: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in network.modules() if isinstance(m, nn.BatchNorm2d)]


@torch.no_grad()
def statistics_pass(network: nn.Module, batches, device, targets=None) -> tuple[list, list]:
    """Per BatchNorm: per batch (mean, std) over (N, H, W), and float64 (count, sum, sum of squares);
    with ``targets[b][k] = (mean, std)`` each batch's output is moved to them in flight."""
    per_batch: list[list] = []
    totals: list[list] = [[0, 0.0, 0.0] for _ in norms(network)]
    batch = [0]

    def hook(k: int, output: torch.Tensor) -> None:
        var, mean = torch.var_mean(output, dim=(0, 2, 3), unbiased=False)
        std = var.sqrt()
        per_batch[batch[0]].append((mean, std))
        n = output.numel() // output.shape[1]
        totals[k][0] += n
        totals[k][1] = totals[k][1] + n * mean.double()  # float64 sums of the batch moments: no pass over the output
        totals[k][2] = totals[k][2] + n * (var.double() + mean.double() ** 2)
        if targets is not None:
            goal_mean, goal_std = targets[batch[0]][k]
            scale = goal_std / std
            output.mul_(scale.view(1, -1, 1, 1)).add_((goal_mean - scale * mean).view(1, -1, 1, 1))

    handles = [m.register_forward_hook(lambda m, i, o, k=k: hook(k, o)) for k, m in enumerate(norms(network))]
    network.eval()
    for x, *_ in batches:
        per_batch.append([])
        network(x.to(device))
        batch[0] += 1
    for h in handles:
        h.remove()
    moments = [((s / n).float(), (q / n - (s / n) ** 2).clamp_min(0).sqrt().float()) for n, s, q in totals]
    return per_batch, moments


def floor_line(network, anchors, ts, train, test, device) -> list[float]:
    ends = []
    for weights in ([1.0, 0.0], [0.0, 1.0]):
        plain.write(plain.parameters(network), anchors, weights)
        plain.bn_pass(network, train, device)
        ends.append(statistics_pass(network, train, device))
    losses = []
    for t in ts:
        w = (1 - t, t)
        plain.write(plain.parameters(network), anchors, w)
        plain.bn_pass(network, train, device)
        targets = [[tuple(w[0] * a + w[1] * b for a, b in zip(sa, sb)) for sa, sb in zip(ba, bb)]
                   for ba, bb in zip(ends[0][0], ends[1][0])]
        _, point = statistics_pass(network, train, device, targets)
        with torch.no_grad():
            for m, (mean, std), (ma, sa), (mb, sb) in zip(norms(network), point, ends[0][1], ends[1][1]):
                scale = (w[0] * sa + w[1] * sb) / std
                m.weight.mul_(scale)
                m.bias.copy_(scale * m.bias + w[0] * ma + w[1] * mb - scale * mean)
        losses.append(plain.eval_pass(network, test, device))
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    timing.options(parser, repeats=3)
    parser.add_argument("--images", type=int, default=256, help="images of each split")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    device = timing.setup(args)
    data = {split: DataLoader(plain.cifar_like(args.images, seed), batch_size=args.batch) for seed, split in enumerate(["train", "test"])}
    torch.manual_seed(1)
    start, end = TinyTen(), TinyTen()
    network = copy.deepcopy(start).to(device)
    anchors = [plain.parameters(start.to(device)), plain.parameters(end.to(device))]
    ts = [k / (POINTS - 1) for k in range(POINTS)]
    accelerator = "cuda" if device.type == "cuda" else "cpu"
    results: dict = {}

    def api() -> None:
        results["api"] = lp.interpolate(start, end, data, t=ts, splits=("test",), accelerator=accelerator, progress=False,
                                        repair=True)

    def floor() -> None:
        results["floor"] = floor_line(network, anchors, ts, data["train"], data["test"], device)

    times = timing.interleave({"plain REPAIRed points (floor)": floor, "lp.interpolate(repair=True)": api}, args.repeats, device)
    print(f"{POINTS}-point REPAIRed line, TinyTen, {args.images} train + {args.images} test images of 3x32x32, batch {args.batch}; "
          "the two ends measured once per line")
    timing.print_times(times, per=POINTS, unit="ms")
    losses = {row.key: row.loss for row in results["api"].rows if row.split == "test"}
    gap = max(abs(losses[t] - loss) / max(1.0, abs(loss)) for t, loss in zip(ts, results["floor"]))
    print(f"  largest relative loss difference, API vs floor, over the {POINTS} points: {gap:.1e}")
    timing.print_ratios([("lp.interpolate(repair=True) / plain points", timing.ratios(times, "lp.interpolate(repair=True)",
                                                                                       "plain REPAIRed points (floor)"), 1.05)])


if __name__ == "__main__":
    main()
