"""Neuron alignment of two networks (activation matching, algorithm 1 of the alignment paper, or
weight matching), what it changes, and how well a midpoint's units correspond to the endpoints'.

``align`` returns the permutations of B's units, B permuted (the same function), the per-layer
cross-correlations before and after, and the straight lines A → B and A → PB.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.utils.data import DataLoader

from landscape_pl.api.inputs import Network, NetworkLike, as_data, as_network, task_of
from landscape_pl.api.lines import PathResult, interpolate
from landscape_pl.api.result import Result
from landscape_pl.atomic import save_figure
from landscape_pl.data.loaders import Data
from landscape_pl.data.subsets import alignment_batches
from landscape_pl.devices import device
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network, save_network, write_json
from landscape_pl.labels import short
from landscape_pl.models.base import Spec
from landscape_pl.paths import Row, has_batchnorm
from landscape_pl.paths.grid import t_grid
from landscape_pl.symmetry import (
    Correlation,
    PermutationSpec,
    align_activations,
    check_pair,
    correlation_signature,
    cross_correlations,
    from_lists,
    linear_midpoint,
    permute_network,
    signature,
    to_lists,
)
from landscape_pl.symmetry.activation import weight_matched
from landscape_pl.symmetry.weight_matching import weight_match


@dataclass
class AlignmentResult(Result):
    """The permutations (group name → index tensor), the permuted end network, the correlations and report.

    Files: aligned.ckpt, permutation.json, report.json, heatmaps/*.png, mean_correlation.png and, with
    lines, unaligned/ and aligned/ (each a path folder) and paths.png.
    """

    permutations: dict[str, torch.Tensor]
    network: nn.Module
    correlations: dict[str, Correlation] | None
    report: dict
    lines: dict[str, PathResult] = field(default_factory=dict)
    spec: PermutationSpec | None = None
    network_spec: Spec | None = None
    task: str = "classification"

    @classmethod
    def load(cls, folder: str | Path) -> "AlignmentResult":
        """The result a finished run left in ``folder``: report, permutations and the aligned network (no lines)."""
        folder = Path(folder)
        report = json.loads((folder / "report.json").read_text())
        permutations = from_lists(json.loads((folder / "permutation.json").read_text())["permutation"])
        aligned = load_network(folder / "aligned.ckpt")
        return cls(permutations, aligned.network, None, report, network_spec=aligned.spec, task=aligned.task)

    @property
    def summary(self) -> dict:
        return self.report

    def write(self, folder: Path, tensorboard: bool) -> None:
        aligned = save_network(self.network.cpu(), folder / "aligned.ckpt", self.task, self.network_spec,
                               alignment={key: self.report[key] for key in ("start", "end", "method")})
        write_json({**{key: self.report[key] for key in ("start", "end", "method")}, "permutation": to_lists(self.permutations)},
                   folder / "permutation.json")
        if self.correlations is not None:
            write_figures(self.correlations, self.permutations, folder, tensorboard)
        for label, path in self.lines.items():
            (folder / label).mkdir(parents=True, exist_ok=True)
            path.write(folder / label, tensorboard)
        if self.lines:
            self.write_figure(folder / "paths.png")
        write_json({**self.report, "aligned": str(aligned)}, folder / "report.json")

    def plot(self):
        """The lines A → B and A → PB on one figure, or (no lines) the mean correlation before and after."""
        if not self.lines:
            from landscape_pl.symmetry.figures import signature_figure

            return signature_figure({"before alignment": self.report["before"], "after alignment": self.report["after"]},
                                    "mean cross-correlation of corresponding units")
        from landscape_pl.plots import path_figure

        rows = [Row(r.key, f"{label} {r.split}", r.loss, r.accuracy) for label, path in self.lines.items() for r in path.rows]
        return path_figure(rows, f"{short(self.report['start'])} → {short(self.report['end'])}, unaligned and aligned")


def write_figures(correlations: dict[str, Correlation], perms: dict[str, torch.Tensor], out: Path, tensorboard: bool) -> None:
    """Heatmaps per group and the before/after signature, as PNG and (optionally) in TensorBoard."""
    import matplotlib.pyplot as plt

    from landscape_pl.symmetry.figures import heatmaps, signature_figure

    before, after = signature(correlations), signature(correlations, perms)
    writer = None
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))
    (out / "heatmaps").mkdir(parents=True, exist_ok=True)
    for name, corr in correlations.items():
        figure = heatmaps(corr.matrix, perms[name], f"cross-correlation, {name}")
        save_figure(figure, out / "heatmaps" / f"{name}.png", dpi=100)
        if writer:
            writer.add_figure(f"align/correlation/{name}", figure, 0, close=False)
        plt.close(figure)
    figure = signature_figure({"before alignment": before, "after alignment": after}, "mean cross-correlation of corresponding units")
    save_figure(figure, out / "mean_correlation.png")
    if writer:
        writer.add_figure("align/mean_correlation", figure, 0, close=False)
        for index, name in enumerate(before):
            writer.add_scalar("align/mean_correlation/before", before[name], index)
            writer.add_scalar("align/mean_correlation/after", after[name], index)
        writer.close()
    plt.close(figure)


def shared_spec(a: Network, b: Network, batches: DataLoader | None, accelerator: str) -> PermutationSpec:
    """The two networks' permutation spec, checked on the first inputs of the alignment batches (the data the
    user aligns on; a guessed input without data); then both networks go to the device."""
    example = None if batches is None else next(iter(batches))[0][:2]
    spec = check_pair(a.module, b.module, (a.label, b.label), example)
    where = device(accelerator)
    a.module.to(where)
    b.module.to(where)
    return spec


def align(
    start: NetworkLike,
    end: NetworkLike,
    data: Data | None = None,
    method: Literal["activation", "weight"] = "activation",
    fraction: float = 0.2,
    seed: int = 0,
    points: int = 21,
    splits: Sequence[str] = ("train", "test"),
    bn_batches: int | None = None,
    accelerator: str = "auto",
    progress: bool = True,
    repair: bool = False,
) -> AlignmentResult:
    """Permute ``end``'s hidden units to match ``start``'s.

    ``method`` activation correlates the units' activations on a seeded ``fraction`` of the training
    data (groups without probes, an attention block's heads and head dims, are weight matched with the
    others held; the report's ``weight_matched`` lists them); weight matches weights and needs no data
    (the report's ``weight_matching`` holds its sweeps and objective gain). With data, the report holds
    each probed layer's mean cross-correlation of corresponding units before and after, dead units, and
    (``points`` > 0) the loss barriers and midpoint (t = 0.5) accuracies of the straight lines start → end
    and start → aligned end on ``splits``; ``repair`` adds the line start → aligned end with REPAIR at
    every t (``aligned_repair``: variance collapse corrected, ``symmetry.repair``).
    """
    if method not in ("activation", "weight"):
        raise LandscapeError(f"method must be 'activation' or 'weight', got {method!r}")
    a, b = as_network(start, "start"), as_network(end, "end")
    has_data = data is not None or b.path is not None
    if not has_data and method == "activation":
        raise LandscapeError("activation alignment needs data: pass data (a LandscapeDataModule or DataLoaders), or method='weight'")
    datamodule = as_data(data, a, b) if has_data else None
    batches = alignment_batches(datamodule, fraction, seed) if datamodule is not None else None
    spec = shared_spec(a, b, batches, accelerator)
    correlations = None
    report: dict = {"start": a.label, "end": b.label, "method": method}
    if method == "activation":
        perms, correlations = align_activations(a.module, b.module, spec, batches, progress)
        report["weight_matched"] = weight_matched(spec)
    else:
        match = weight_match(a.module.state_dict(), b.module.state_dict(), spec, [n for n, _ in a.module.named_parameters()])
        perms, report["weight_matched"] = match.permutations, list(spec.names)
        report["weight_matching"] = {"sweeps": match.sweeps, "gain": match.gain}
        if batches is not None:
            correlations = cross_correlations(a.module, b.module, spec, batches, progress)
    perms = {name: p.cpu() for name, p in perms.items()}
    permuted = permute_network(b.module, spec, perms)
    if correlations is not None:
        before, after = signature(correlations), signature(correlations, perms)
        report |= {
            "fraction": fraction, "samples": len(batches.dataset),
            "groups": {name: {"units": len(perms[name]), "before": before[name], "after": after[name],
                              "dead_start": correlations[name].dead_a, "dead_end": correlations[name].dead_b}
                       for name in correlations},
            "mean_correlation": {"before": sum(before.values()) / max(len(before), 1), "after": sum(after.values()) / max(len(after), 1)},
        }
    lines: dict[str, PathResult] = {}
    if points and datamodule is not None:
        ts = t_grid(0.0, 1.0, points)
        walks = [("unaligned", b.module, False, b.label), ("aligned", permuted, False, f"{b.label} (aligned)")]
        walks += [("aligned_repair", permuted, True, f"{b.label} (aligned, REPAIR)")] if repair else []
        for label, other, repaired, end_label in walks:
            lines[label] = interpolate(a.module, other, datamodule, ts, bn_batches=bn_batches, splits=splits,
                                       accelerator=accelerator, progress=progress, repair=repaired)
            lines[label].summary |= {"start": a.label, "end": end_label}
            lines[label].title = f"{short(a.label)} → {short(end_label)} (all)"
        report["barrier"] = {label: {split: path.summary[split]["barrier"] for split in splits} for label, path in lines.items()}
        report["midpoint_accuracy"] = {label: {split: midpoint(path.rows, split).accuracy for split in splits}
                                       for label, path in lines.items()}
    return AlignmentResult(perms, permuted, correlations, report, lines, spec, b.spec, task_of(datamodule, a, b) if datamodule else
                           (b.task or "classification"))


def midpoint(rows: Sequence[Row], split: str) -> Row:
    """The row of ``split`` nearest t = 0.5."""
    return min((r for r in rows if r.split == split), key=lambda r: abs(r.key - 0.5))


@dataclass
class SignatureResult(Result):
    """Per midpoint and endpoint, the per-layer mean correlation of units as is and aligned (Figure 14).

    Files: signature.json, signature.png.
    """

    signature: dict
    report: dict

    @property
    def summary(self) -> dict:
        return self.report

    def write(self, folder: Path, tensorboard: bool) -> None:
        write_json(self.report, folder / "signature.json")
        self.write_figure(folder / "signature.png", "signature" if tensorboard else None)

    def plot(self):
        """One panel per endpoint; one line per midpoint as is, one per midpoint aligned to that endpoint."""
        from landscape_pl.plots import plt
        from landscape_pl.symmetry.figures import signature_figure

        fig, axes = plt.subplots(1, 2, figsize=(12, 4), squeeze=False)
        for ax, endpoint in zip(axes[0], ("start", "end")):
            curves = {}
            for name, sides in self.signature.items():
                curves[name] = sides[endpoint]["as_is"]
                curves[f"{name}, aligned to {endpoint}"] = sides[endpoint]["aligned"]
            signature_figure(curves, f"midpoint vs {endpoint} endpoint", ax)
        return fig


def correlation_signatures(
    start: NetworkLike,
    end: NetworkLike,
    data: Data | None = None,
    midpoint: NetworkLike | None = None,
    fraction: float = 0.2,
    seed: int = 0,
    accelerator: str = "auto",
    progress: bool = True,
) -> SignatureResult:
    """How well the linear midpoint's (and ``midpoint``'s) units correspond to each endpoint's (appendix F)."""
    a, b = as_network(start, "start"), as_network(end, "end")
    datamodule = as_data(data, a, b)
    batches = alignment_batches(datamodule, fraction, seed)
    spec = shared_spec(a, b, batches, accelerator)
    endpoints = {"start": a.module, "end": b.module}
    bn_data = datamodule.eval_dataloader("train") if has_batchnorm(a.module) else None
    midpoints = {"linear midpoint": linear_midpoint(a.module, b.module, bn_data)}
    if midpoint is not None:
        given = as_network(midpoint, "midpoint")
        check_pair(a.module, given.module, (a.label, given.label))
        midpoints["midpoint"] = given.module.to(device(accelerator))
    result = {name: correlation_signature(net, endpoints, spec, batches, progress) for name, net in midpoints.items()}
    label = None if midpoint is None else as_label(midpoint)
    return SignatureResult(result, {"start": a.label, "end": b.label, "midpoint": label, "signature": result})


def as_label(network: NetworkLike) -> str:
    return str(network) if isinstance(network, (str, Path)) else "midpoint"
