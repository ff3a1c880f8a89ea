"""``sweep``: DSS for several thresholds L0 and model pairs (Figures 2-6 of Freeman & Bruna 2017).

Each (pair, L0) is one string (``landscape_pl.api.strings.connect``) in its own folder, reported there
as ``connect`` reports it, so an interrupted sweep resumes string by string. Writes runs.csv (one row
per string), sweep.csv (per L0: mean normalized length, mean bead count, share connected) and
sweep.png (both means against L0).
"""

from __future__ import annotations

import csv
import inspect
from pathlib import Path
from statistics import mean

import torch
from lightning.pytorch.cli import OptimizerCallable

from landscape_pl.api import strings
from landscape_pl.atomic import replacing, save_figure
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.plots import plt
from landscape_pl.search import CONNECTED
from landscape_pl.study.strings import resolve_ends

RUN_COLUMNS = ("threshold", "pair", "verdict", "beads", "normalized_length", "max_segment_loss")
OWN = {"start", "end", "data", "threshold", "folder", "optimizer", "train_ends", "spec", "progress"}


def check_options(options: dict) -> None:
    """Options are ``connect`` settings (``tensorboard``: its report's); name the first one it does not take."""
    allowed = (set(inspect.signature(strings.connect).parameters) - OWN) | {"tensorboard"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise LandscapeError(f"options key {unknown[0]!r} is not a connect setting; choose from {sorted(allowed)}")


def aggregate(rows: list[dict], thresholds: list[float]) -> list[dict]:
    """Per threshold: mean normalized length and bead count over pairs, and the share of pairs connected."""
    table = []
    for threshold in thresholds:
        mine = [r for r in rows if r["threshold"] == threshold]
        table.append({
            "threshold": threshold,
            "mean_normalized_length": mean(r["normalized_length"] for r in mine),
            "mean_beads": mean(r["beads"] for r in mine),
            "connected_share": mean(r["verdict"] == CONNECTED for r in mine),
            "pairs": len(mine),
        })
    return table


def write_csv(rows: list[dict], path: Path) -> None:
    with replacing(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def sweep_figure(table: list[dict], title: str) -> plt.Figure:
    """Average normalized length (left) and average bead count (right) against L0, as in Figures 2-6."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    x = [r["threshold"] for r in table]
    for ax, key, label in zip(axes, ("mean_normalized_length", "mean_beads"), ("average normalized length", "average number of beads")):
        ax.plot(x, [r[key] for r in table], marker="o")
        ax.set_xscale("log")
        ax.set_xlabel("threshold L0")
        ax.set_ylabel(label)
        ax.invert_xaxis()
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def sweep(
    thresholds: list[float],
    pairs: list[tuple[str, str]] | None = None,
    endpoint_config: str | None = None,
    num_pairs: int = 2,
    epochs: int | None = None,
    out: str = "runs/sweep",
    data: LandscapeDataModule | None = None,
    optimizer: OptimizerCallable = torch.optim.Adam,
    options: dict | None = None,
    progress: bool = True,
) -> list[dict]:
    """Connect every pair at every threshold (ends trained to alpha * L0 where needed); tabulate and plot.

    Args:
        thresholds: the levels L0, e.g. [0.02, 0.01, 0.005].
        pairs: (start, end) checkpoints; default: ``num_pairs`` pairs trained from ``endpoint_config``.
        endpoint_config: fit config the pairs are trained from (pair k uses seeds 2k+1 and 2k+2).
        num_pairs: how many pairs to train from ``endpoint_config``.
        epochs: override the endpoint config's max_epochs.
        out: folder; pair k at L0 goes to ``out/pair{k}/L0_{L0}``.
        data: data module; default: the one in each end run's saved config.yaml.
        optimizer: bead optimizer (as in connect).
        options: further connect settings, e.g. {"bead_steps": 300, "max_beads": 20, "algorithm": "greedy"}.
        progress: progress bars.
    """
    options = dict(options or {})
    check_options(options)
    tensorboard = options.pop("tensorboard", True)
    if not thresholds:
        raise LandscapeError("thresholds is empty: give at least one L0")
    root = Path(out)
    if pairs is None:
        if num_pairs <= 0:
            raise LandscapeError(f"num_pairs={num_pairs}: give at least one pair")
        pairs = [resolve_ends(None, None, endpoint_config, (2 * k + 1, 2 * k + 2), epochs, root / f"pair{k}") for k in range(num_pairs)]
    rows = []
    for k, (start, end) in enumerate(pairs):
        for threshold in thresholds:
            folder = root / f"pair{k}" / f"L0_{threshold:g}"
            result = strings.connect(start, end, data, threshold=threshold, folder=folder, optimizer=optimizer, train_ends=True,
                                     progress=progress, **options)
            result.save(folder, tensorboard)
            print(result.headline())
            summary = result.summary
            rows.append({"threshold": threshold, "pair": k, "verdict": summary["verdict"], "beads": summary["beads"],
                         "normalized_length": summary["normalized_length"], "max_segment_loss": max(summary["segment_max_loss"])})
    table = aggregate(rows, thresholds)
    write_csv(rows, root / "runs.csv")
    write_csv(table, root / "sweep.csv")
    figure = sweep_figure(table, f"DSS over {len(pairs)} pair(s)")
    save_figure(figure, root / "sweep.png")
    plt.close(figure)
    for r in table:
        print(f"L0={r['threshold']:g}: normalized length {r['mean_normalized_length']:.3f}, beads {r['mean_beads']:.2f}, connected {r['connected_share']:.0%}")
    print(f"wrote {root / 'runs.csv'}, sweep.csv and sweep.png")
    return table
