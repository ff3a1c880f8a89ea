"""Merging N networks of one architecture into one: align, average, fix up (model soups with alignment).

Each network's hidden units are permuted to a reference's (activation or weight matching), the
aligned weights are averaged uniformly, and a fix-up repairs the statistics averaging breaks:
RESET recomputes BatchNorm statistics, REPAIR also rescales every unit back to the mean of the
endpoints' statistics. The reference is one of the networks, or (``reference="average"``, Git
Re-Basin's multi-model matching) all the others: each network in turn is re-aligned to the rest, round
after round until one changes no permutation (``symmetry.many``: weight matching to the mean of the
others; activation matching to the mean of its correlations with each of them, since the averaged
network's own activations are what averaging collapses).

The report sets the merged network beside each endpoint, the uniform average without alignment
(with the same fix-up, so the difference is the alignment's), the aligned average before the
fix-up, and the ensemble of the N (probabilities averaged), the ceiling a single network is measured against.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from landscape_pl.api.curves import ensemble_row, predictions
from landscape_pl.api.inputs import Network, NetworkLike, as_data, as_network, task_of
from landscape_pl.api.result import Result
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.data.loaders import Data
from landscape_pl.data.subsets import alignment_batches
from landscape_pl.devices import device
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network, save_network, write_json
from landscape_pl.models.base import Spec
from landscape_pl.paths import has_batchnorm
from landscape_pl.paths.evaluate import evaluate
from landscape_pl.paths.fixups import RecomputeBatchNorm
from landscape_pl.reporting import write_table
from landscape_pl.symmetry import PermutationSpec, from_lists, permute_network, spec_of, to_lists
from landscape_pl.symmetry.many import average, to_each_other, to_reference
from landscape_pl.symmetry.pair import check_same_architecture
from landscape_pl.symmetry.repair import repair
from landscape_pl.tasks import Task, get_task

Fixup = Literal["none", "reset", "repair"]
FIXUPS = ("none", "reset", "repair")
Reference = int | Literal["average"]


@dataclass
class MergeResult(Result):
    """The merged network, each network's permutation into its unit order, and the table of networks.

    ``rows``: one per network (each endpoint, the unaligned average, the aligned average, the merged
    network, the ensemble) with ``<split>_loss`` and ``<split>_accuracy``. Files: merge.csv, merge.md,
    merge.json (summary and rows), permutations.json, merged.ckpt (an ordinary checkpoint), merge.png.
    """

    rows: list[dict]
    summary: dict
    network: nn.Module
    permutations: list[dict[str, torch.Tensor]]
    network_spec: Spec | None = None
    task: str = "classification"

    @classmethod
    def load(cls, folder: str | Path) -> MergeResult:
        """The result a finished run left in ``folder``: table, summary, permutations and the merged network."""
        folder = Path(folder)
        saved = json.loads((folder / "merge.json").read_text())
        permutations = [from_lists(p) for p in json.loads((folder / "permutations.json").read_text())["permutations"]]
        merged = load_network(folder / "merged.ckpt")
        return cls(saved["rows"], saved["summary"], merged.network, permutations, merged.spec, merged.task)

    @property
    def columns(self) -> list[str]:
        return ["network", "kind", *[f"{split}_{what}" for split in self.summary["splits"] for what in ("loss", "accuracy")]]

    def write(self, folder: Path, tensorboard: bool) -> None:
        write_table(self.rows, self.columns, folder / "merge")
        settings = {key: self.summary[key] for key in ("networks", "method", "reference", "fixup")}
        write_json({**settings, "permutations": [to_lists(p) for p in self.permutations]}, folder / "permutations.json")
        save_network(self.network.cpu(), folder / "merged.ckpt", self.task, self.network_spec, merge=settings)
        write_json({"summary": self.summary, "rows": self.rows}, folder / "merge.json")
        self.write_figure(folder / "merge.png", "merge" if tensorboard else None)

    def plot(self):
        """Bars per network (accuracy, or loss for regression), one bar per split; endpoints numbered as in the table."""
        from landscape_pl.plots import plt

        splits = self.summary["splits"]
        metric = "accuracy" if all(r.get(f"{splits[0]}_accuracy") is not None for r in self.rows) else "loss"
        names = [f"endpoint {i}" if r["kind"] == "endpoint" else r["network"] for i, r in enumerate(self.rows)]
        fig, ax = plt.subplots(figsize=(8, 1.2 + 0.3 * len(self.rows) * len(splits)))
        height = 0.8 / len(splits)
        for index, split in enumerate(splits):
            positions = [i + index * height for i in range(len(self.rows))]
            ax.barh(positions, [r[f"{split}_{metric}"] for r in self.rows], height, label=split)
        ax.set_yticks([i + height * (len(splits) - 1) / 2 for i in range(len(self.rows))], names)
        ax.invert_yaxis()
        ax.set_xlabel(metric)
        ax.set_title(f"{len(self.permutations)} networks merged: {self.summary['method']} matching, "
                     f"reference {self.summary['reference']}, fix-up {self.summary['fixup']}", fontsize=10)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        return fig


def fix(network: nn.Module, fixup: str, endpoints: Sequence[nn.Module], reset: RecomputeBatchNorm) -> nn.Module:
    """The fix-up applied in place to the average of ``endpoints``: none; RESET (BatchNorm statistics
    recomputed on the training data); or REPAIR after RESET (every unit given the mean of the endpoints'
    means and standard deviations, measured on the same data)."""
    if fixup == "reset":
        reset.apply(network, None)
    elif fixup == "repair":
        repair(network, [(e, 1 / len(endpoints)) for e in endpoints], reset.data, reset.batches, reset)
    return network


def scores(network: nn.Module, loaders: dict, task: Task) -> dict[str, float | None]:
    """``<split>_loss`` and ``<split>_accuracy`` of one network on every split."""
    row: dict[str, float | None] = {}
    for split, loader in loaders.items():
        row[f"{split}_loss"], row[f"{split}_accuracy"] = evaluate(network, loader, task)
    return row


def ensemble_scores(modules: Sequence[nn.Module], loaders: dict, task: Task) -> dict[str, float | None]:
    """The same columns for the ensemble: the networks' probabilities (regression: outputs) averaged."""
    row: dict[str, float | None] = {}
    for split, loader in loaders.items():
        outputs = [predictions(m, loader, task) for m in modules]
        found = ensemble_row("ensemble", [o[0] for o in outputs], outputs[0][1], task)
        row[f"{split}_loss"], row[f"{split}_accuracy"] = found["loss"], found["accuracy"]
    return row


def check_settings(networks: Sequence[NetworkLike], method: str, reference: Reference, fixup: str, rounds: int) -> None:
    if isinstance(networks, (str, Path, nn.Module)) or len(networks) < 2:
        raise LandscapeError("merge needs at least 2 networks (checkpoints or nn.Modules) in a list: merging one network "
                             "with nothing leaves it as it is")
    if method not in ("activation", "weight"):
        raise LandscapeError(f"method must be 'activation' or 'weight', got {method!r}")
    if fixup not in FIXUPS:
        raise LandscapeError(f"fixup must be one of {list(FIXUPS)}, got {fixup!r}")
    if reference != "average" and (isinstance(reference, bool) or not isinstance(reference, int)
                                   or not 0 <= reference < len(networks)):
        raise LandscapeError(f"reference={reference!r}: give the index of one of the {len(networks)} networks "
                             f"(0 to {len(networks) - 1}) or 'average'")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise LandscapeError(f"rounds={rounds!r}: the most rounds of alignment to the average is a number of 1 or more")


def shared_spec(given: Sequence[Network]) -> PermutationSpec:
    """The permutation spec all networks share (derived and checked once); errors name the first network of
    another architecture."""
    for other in given[1:]:
        check_same_architecture(given[0].module, other.module, (given[0].label, other.label))
    return spec_of(given[0].module)


def merge(
    networks: Sequence[NetworkLike],
    data: Data | None = None,
    method: Literal["activation", "weight"] = "activation",
    reference: Reference = 0,
    fixup: Fixup = "reset",
    rounds: int = 10,
    fraction: float = 0.2,
    seed: int = 0,
    splits: Sequence[str] = ("train", "test"),
    bn_batches: int | None = None,
    accelerator: str = "auto",
    progress: bool = True,
) -> MergeResult:
    """Align ``networks`` to a reference, average them uniformly, fix up the average; report it beside the rest.

    Args:
        networks: two or more networks of one architecture (nn.Modules or checkpoints); never changed.
        data: a LandscapeDataModule or DataLoaders; default: the data of the last checkpoint's run (its config.yaml).
        method: activation (correlation of activations on a seeded ``fraction`` of the training data) or weight matching.
        reference: the index of the network whose unit order the others take, or "average" (each to all the
            others, repeated for at most ``rounds`` rounds until no permutation changes).
        fixup: none, reset (BatchNorm statistics recomputed on the training data; nothing for networks without
            BatchNorm) or repair (reset, then each unit's mean and std set to the mean of the aligned endpoints').
        bn_batches: training batches the statistics are recomputed on; None is one full pass.
        splits: splits every network is evaluated on.
    """
    check_settings(networks, method, reference, fixup, rounds)
    given = [as_network(n, f"network {i}") for i, n in enumerate(networks)]
    spec = shared_spec(given)
    datamodule: LandscapeDataModule = as_data(data, *given)
    task_name = task_of(datamodule, *given)
    task = get_task(task_name)
    where = device(accelerator)
    modules = [g.module.to(where) for g in given]
    batches = alignment_batches(datamodule, fraction, seed) if method == "activation" else None
    reset = RecomputeBatchNorm(datamodule.eval_dataloader("train"), bn_batches)
    if reference == "average":
        alignment = to_each_other(modules, spec, method, batches, rounds, progress)
    else:
        alignment = to_reference(modules, spec, method, batches, reference, progress)
    perms = [{name: p.cpu() for name, p in found.items()} for found in alignment.permutations]
    copies = [permute_network(m, spec, p) for m, p in zip(modules, perms)]
    aligned = average(copies)
    merged = fix(copy.deepcopy(aligned), fixup, copies, reset)
    unaligned = fix(average(modules), fixup, modules, reset)
    loaders = {split: datamodule.eval_dataloader(split) for split in splits}
    rows = [{"network": g.label, "kind": "endpoint", **scores(g.module, loaders, task)} for g in given]
    with_fixup = "" if fixup == "none" else f" + {fixup}"
    rows.append({"network": f"uniform average, unaligned{with_fixup}", "kind": "unaligned", **scores(unaligned, loaders, task)})
    if fixup != "none":
        rows.append({"network": "aligned average, no fix-up", "kind": "aligned", **scores(aligned, loaders, task)})
    rows.append({"network": f"merged{with_fixup}", "kind": "merged", **scores(merged, loaders, task)})
    rows.append({"network": f"ensemble of {len(given)}", "kind": "ensemble", **ensemble_scores(modules, loaders, task)})
    summary = {
        "networks": [g.label for g in given], "method": method, "reference": reference, "fixup": fixup,
        "batchnorm": has_batchnorm(modules[0]), "rounds": alignment.rounds, "converged": alignment.converged, "splits": list(splits),
        "task": task_name, **({"fraction": fraction, "seed": seed} if method == "activation" else {}),
        "gain": gains(rows, splits),
    }
    return MergeResult(rows, summary, merged, perms, given[0].spec, task_name)


def gains(rows: Sequence[dict], splits: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """Per split, how far the merged network is above the unaligned average, the mean and best endpoint, and the ensemble."""
    by_kind = {r["kind"]: r for r in rows}
    endpoints = [r for r in rows if r["kind"] == "endpoint"]
    result = {}
    for split in splits:
        key = f"{split}_accuracy"
        merged = by_kind["merged"][key]
        if merged is None:
            result[split] = {"loss_below_unaligned": by_kind["unaligned"][f"{split}_loss"] - by_kind["merged"][f"{split}_loss"]}
            continue
        accuracies = [r[key] for r in endpoints]
        result[split] = {
            "over_unaligned": merged - by_kind["unaligned"][key],
            "over_mean_endpoint": merged - sum(accuracies) / len(accuracies),
            "over_best_endpoint": merged - max(accuracies),
            "below_ensemble": by_kind["ensemble"][key] - merged,
        }
    return result
