"""``align``: permute the end network's units to match the start network's, and show what it changes.

Writes ``aligned.ckpt`` (the end network permuted: the same function, an ordinary checkpoint),
``permutation.json``, ``report.json`` (per layer mean cross-correlation of corresponding units
before/after, dead units, both loss barriers), heatmaps of the cross-correlation matrices
(``heatmaps/*.png`` and TensorBoard), ``mean_correlation.png`` (Figure 1b of the alignment paper)
and the straight lines start → end (``unaligned/``) and start → aligned end (``aligned/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import DataLoader, Subset

from landscape_pl.commands.interpolate import interpolate
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.data.saved import resolve_data
from landscape_pl.devices import device
from landscape_pl.errors import LandscapeError
from landscape_pl.io import LoadedNetwork, load_network, read_path_csv, save_network, write_json
from landscape_pl.labels import short
from landscape_pl.paths import Row
from landscape_pl.symmetry import (
    PermutationSpec,
    align_activations,
    check_pair,
    cross_correlations,
    match_weights,
    permute_network,
    signature,
    to_lists,
)


def alignment_batches(datamodule: LandscapeDataModule, fraction: float, seed: int) -> DataLoader:
    """A seeded random ``fraction`` of the training split, unaugmented, in evaluation batches."""
    if not 0 < fraction <= 1:
        raise LandscapeError(f"fraction={fraction}: the share of training data to align on must be in (0, 1]")
    dataset = datamodule.split("train")
    count = max(1, round(fraction * len(dataset)))
    index = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count].sort().values
    return DataLoader(Subset(dataset, index.tolist()), batch_size=datamodule.eval_batch_size, shuffle=False)


@dataclass
class Pair:
    """Two checkpoints to compare unit by unit: networks on the device, their spec, data and batches."""

    a: LoadedNetwork
    b: LoadedNetwork
    spec: PermutationSpec
    datamodule: LandscapeDataModule
    batches: DataLoader
    where: torch.device


def load_pair(start: str, end: str, data: LandscapeDataModule | None, fraction: float, seed: int, accelerator: str) -> Pair:
    """What ``align`` and ``signature`` both start from; errors name the first architecture mismatch."""
    a, b = load_network(start), load_network(end)
    spec = check_pair(a.network, b.network, (start, end))
    datamodule = resolve_data(data, end)
    where = device(accelerator)
    a.network.to(where)
    b.network.to(where)
    return Pair(a, b, spec, datamodule, alignment_batches(datamodule, fraction, seed), where)


def align(
    start: str,
    end: str,
    out: str = "runs/align",
    method: Literal["activation", "weight"] = "activation",
    data: LandscapeDataModule | None = None,
    fraction: float = 0.2,
    seed: int = 0,
    points: int = 21,
    splits: list[Literal["train", "test"]] = ["train", "test"],  # noqa: B006 - jsonargparse needs a literal default
    bn_batches: int | None = None,
    accelerator: str = "auto",
    tensorboard: bool = True,
    progress: bool = True,
) -> dict:
    """Align ``end`` to ``start``; write the aligned checkpoint, the permutation and the report.

    Args:
        start: checkpoint whose unit order is kept.
        end: checkpoint whose hidden units are permuted.
        out: output folder.
        method: activation (algorithm 1: correlation of activations on training data) or weight
            (weight matching, no data; the report's correlations still use the data).
        data: data module; default: the one in ``end``'s run config.yaml.
        fraction: share of the training split the activations are computed on.
        seed: which random subset of the training split.
        points: grid points of the two straight lines on [0, 1] (0: skip the lines).
        splits: splits the lines are evaluated on.
        bn_batches: BatchNorm recomputation along the lines, as in ``interpolate``.
        accelerator: cpu, cuda or auto.
        tensorboard: also write heatmaps and signatures to ``out/tensorboard``.
        progress: show progress bars.
    """
    pair = load_pair(start, end, data, fraction, seed, accelerator)
    a, b, spec, datamodule, batches = pair.a, pair.b, pair.spec, pair.datamodule, pair.batches
    net_a, net_b = a.network, b.network
    if method == "activation":
        perms, correlations = align_activations(net_a, net_b, spec, batches, progress)
    else:
        perms = match_weights(net_a.state_dict(), net_b.state_dict(), spec, [n for n, _ in net_a.named_parameters()])
        correlations = cross_correlations(net_a, net_b, spec, batches, progress)
    perms = {name: p.cpu() for name, p in perms.items()}
    out_path = Path(out)
    aligned = save_network(permute_network(net_b, spec, perms).cpu(), out_path / "aligned.ckpt", b.task, b.spec,
                           alignment={"start": start, "end": end, "method": method})
    write_json({"start": start, "end": end, "method": method, "permutation": to_lists(perms)}, out_path / "permutation.json")
    before, after = signature(correlations), signature(correlations, perms)
    report = {
        "start": start, "end": end, "method": method, "fraction": fraction, "samples": len(batches.dataset),
        "aligned": str(aligned),
        "groups": {name: {"units": len(p), "before": before[name], "after": after[name],
                          "dead_start": correlations[name].dead_a, "dead_end": correlations[name].dead_b}
                   for name, p in perms.items()},
        "mean_correlation": {"before": sum(before.values()) / max(len(before), 1), "after": sum(after.values()) / max(len(after), 1)},
    }
    write_figures(correlations, perms, before, after, out_path, tensorboard)
    if points:
        report["barrier"] = compare_lines(start, end, str(aligned), out_path, datamodule, points, splits, bn_batches, accelerator, tensorboard, progress)
    write_json(report, out_path / "report.json")
    print(f"wrote {aligned}, permutation.json and report.json in {out_path}")
    return report


def write_figures(correlations, perms, before, after, out: Path, tensorboard: bool) -> None:
    """Heatmaps per group and the before/after signature, as PNG and (optionally) in TensorBoard."""
    import matplotlib.pyplot as plt

    from landscape_pl.symmetry.figures import heatmaps, signature_figure

    writer = None
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))
    (out / "heatmaps").mkdir(parents=True, exist_ok=True)
    for name, corr in correlations.items():
        figure = heatmaps(corr.matrix, perms[name], f"cross-correlation, {name}")
        figure.savefig(out / "heatmaps" / f"{name}.png", dpi=100)
        if writer:
            writer.add_figure(f"align/correlation/{name}", figure, 0, close=False)
        plt.close(figure)
    figure = signature_figure({"before alignment": before, "after alignment": after}, "mean cross-correlation of corresponding units")
    figure.savefig(out / "mean_correlation.png", dpi=120)
    if writer:
        writer.add_figure("align/mean_correlation", figure, 0, close=False)
        for index, name in enumerate(before):
            writer.add_scalar("align/mean_correlation/before", before[name], index)
            writer.add_scalar("align/mean_correlation/after", after[name], index)
        writer.close()
    plt.close(figure)


def compare_lines(start, end, aligned, out: Path, datamodule, points, splits, bn_batches, accelerator, tensorboard, progress) -> dict:
    """The lines start → end and start → aligned end with ``interpolate``; their barriers and one figure."""
    import matplotlib.pyplot as plt

    from landscape_pl.plots import path_figure

    barriers, rows = {}, []
    for label, other in (("unaligned", end), ("aligned", aligned)):
        summary = interpolate(start, other, out=str(out / label), data=datamodule, t_min=0.0, t_max=1.0, points=points,
                              splits=splits, bn_batches=bn_batches, accelerator=accelerator, tensorboard=tensorboard, progress=progress)
        barriers[label] = {split: summary[split]["barrier"] for split in splits}
        rows += [Row(r.key, f"{label} {r.split}", r.loss, r.accuracy) for r in read_path_csv(out / label / "path.csv")]
    figure = path_figure(rows, f"{short(start)} → {short(end)}, unaligned and aligned")
    figure.savefig(out / "paths.png", dpi=120)
    plt.close(figure)
    return barriers
