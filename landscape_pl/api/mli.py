"""Monotonic linear interpolation from initialization to solution, in the plateau paper's three
variants (all parameters, weights only, biases only; what does not move is held at its final value),
with the MLI verdict, the plateau length and the spread of the final last-layer biases across
classes, which the paper ties to the plateau."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import numpy as np
from torch import nn

from landscape_pl.analysis.profile import plateau_length
from landscape_pl.api.inputs import NetworkLike, as_network
from landscape_pl.api.lines import PathResult, interpolate
from landscape_pl.api.result import Result
from landscape_pl.atomic import save_figure
from landscape_pl.data.loaders import Data
from landscape_pl.errors import LandscapeError
from landscape_pl.io import write_json
from landscape_pl.labels import distinct_labels
from landscape_pl.layout import component, components, init_beside, newest_last
from landscape_pl.paths import Row
from landscape_pl.paths.curvature import HessianSettings
from landscape_pl.paths.grid import t_grid
from landscape_pl.reporting import write_table

RunLike = Union[str, Path, tuple[NetworkLike, NetworkLike]]

Variant = Literal["all", "weights", "biases"]
COLUMNS = ("run", "variant", "split", "monotonic", "first_increase_t", "plateau_length", "loss_start", "loss_end",
           "max_loss", "min_accuracy", "last_bias_spread", "last_bias_std")


def final_checkpoint(path: str | Path) -> Path:
    """A checkpoint as given, or a run folder's newest ``checkpoints/last.ckpt``."""
    given = Path(path)
    if given.is_dir():
        found = newest_last(given)
        if found is None:
            raise LandscapeError(f"run folder {str(path)!r} holds no checkpoints/last.ckpt; pass the final checkpoint itself")
        return found
    return given


def last_layer_bias(network: nn.Module) -> np.ndarray | None:
    """The read-out's bias (one entry per class): the bias of the module holding the last parameter, if any."""
    named = list(network.named_parameters())
    module = named[-1][0].rpartition(".")[0]
    bias = dict(named).get(f"{module}.bias" if module else "bias")
    return None if bias is None else bias.detach().cpu().double().numpy()


def report_rows(label: str, variant: str, rows: list[Row], summary: dict, tolerance: float, bias: np.ndarray | None) -> list[dict]:
    """One table row per split: verdict, plateau and the last-layer bias spread beside them."""
    table = []
    for split in dict.fromkeys(r.split for r in rows):
        mine = [r for r in rows if r.split == split]
        ts, losses = np.array([r.key for r in mine]), np.array([r.loss for r in mine])
        numbers = summary.get(split, {})
        table.append({
            "run": label, "variant": variant, "split": split,
            "monotonic": numbers.get("monotonic"), "first_increase_t": numbers.get("first_increase_t"),
            "plateau_length": plateau_length(ts, losses, tolerance),
            "loss_start": numbers.get("loss_start"), "loss_end": numbers.get("loss_end"),
            "max_loss": numbers.get("max_loss_0_1"), "min_accuracy": numbers.get("min_accuracy_0_1"),
            "last_bias_spread": None if bias is None else float(bias.max() - bias.min()),
            "last_bias_std": None if bias is None else float(bias.std()),
        })
    return table


def figure(profiles: dict[tuple[str, str], list[Row]], tolerance: float):
    """Loss (top) and accuracy (bottom) from t = 0 (init) to 1 (final), one column per split;
    colour = variant, line style = run."""
    from landscape_pl.plots import plt

    rows = [r for profile in profiles.values() for r in profile]
    splits = list(dict.fromkeys(r.split for r in rows))
    has_accuracy = any(r.accuracy is not None for r in rows)
    fig, axes = plt.subplots(2 if has_accuracy else 1, len(splits), figsize=(5.5 * len(splits), 7 if has_accuracy else 3.8), squeeze=False)
    variants = list(dict.fromkeys(v for _, v in profiles))
    runs = list(dict.fromkeys(r for r, _ in profiles))
    styles = ["-", "--", ":", "-."]
    for (run, variant), profile in profiles.items():
        colour = f"C{variants.index(variant)}"
        style = styles[runs.index(run) % len(styles)]
        for s, split in enumerate(splits):
            mine = [r for r in profile if r.split == split]
            label = f"{variant}" + (f" ({run})" if len(runs) > 1 else "")
            axes[0, s].plot([r.key for r in mine], [r.loss for r in mine], style, color=colour, label=label)
            if has_accuracy:
                axes[1, s].plot([r.key for r in mine], [r.accuracy for r in mine], style, color=colour, label=label)
    for s, split in enumerate(splits):
        axes[0, s].set_title(f"{split} (plateau tolerance {tolerance:g})")
        axes[0, s].set_ylabel("loss")
        if has_accuracy:
            axes[1, s].set_ylabel("accuracy")
        for ax in axes[:, s]:
            ax.set_xlabel("t (0 = initialization, 1 = final)")
            ax.legend(fontsize=7)
    fig.suptitle("linear interpolation from initialization: all / weights only / biases only")
    fig.tight_layout()
    return fig


@dataclass
class MLIResult(Result):
    """One table row per (run, variant, split) and each path's profile.

    Files: mli.csv and mli.md (the table), mli.json, mli.png (all profiles), and each path's own
    files under ``<run>/<variant>``.
    """

    table: list[dict]
    paths: dict[tuple[str, str], PathResult]
    runs: list[str]
    plateau_tolerance: float

    @classmethod
    def load(cls, folder: str | Path) -> "MLIResult":
        """The result a finished run left in ``folder`` (mli.json and each path's folder)."""
        folder = Path(folder)
        saved = json.loads((folder / "mli.json").read_text())
        keys = dict.fromkeys((row["run"], row["variant"]) for row in saved["table"])
        paths = {(label, variant): PathResult.load(path_folder(folder, label, variant, f"{folder / 'mli.json'} table"), "interpolate")
                 for label, variant in keys}
        return cls(saved["table"], paths, saved["runs"], saved["plateau_tolerance"])

    @property
    def summary(self) -> dict:
        return {"runs": self.runs, "plateau_tolerance": self.plateau_tolerance, "table": self.table}

    def write(self, folder: Path, tensorboard: bool) -> None:
        components([folder_name(label) for label in dict.fromkeys(label for label, _ in self.paths)], "mli run labels ('/' as '_')")
        for (label, variant), path in self.paths.items():
            target = path_folder(folder, label, variant, "mli run label")
            target.mkdir(parents=True, exist_ok=True)
            path.write(target, False)
        write_table(self.table, COLUMNS, folder / "mli")
        write_json(self.summary, folder / "mli.json")
        fig = self.plot()
        save_figure(fig, folder / "mli.png")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            with SummaryWriter(str(folder / "tensorboard")) as writer:
                for row in self.table:
                    writer.add_scalar(f"mli/{row['run']}/{row['variant']}/{row['split']}/plateau_length", row["plateau_length"], 0)
                writer.add_figure("mli/profiles", fig, 0, close=False)
        from landscape_pl.plots import plt

        plt.close(fig)

    def plot(self):
        return figure({key: path.rows for key, path in self.paths.items()}, self.plateau_tolerance)


def folder_name(label: str) -> str:
    return label.replace("/", "_")


def path_folder(folder: Path, label: str, variant: str, key: str) -> Path:
    """Where a run's path in one variant is kept, ``<label>/<variant>``: the label and variant (from a result
    file, on load) are checked to be plain names, so the folder is always under ``folder``."""
    return folder / component(folder_name(label), key) / component(variant, key)


def run_ends(runs: Sequence[RunLike]) -> tuple[list[tuple[NetworkLike, NetworkLike]], list[str], list[str]]:
    """(init, final) of every run, the runs' short labels, and what each run was given as."""
    if not runs:
        raise LandscapeError("give at least one run (--runs [final.ckpt, ...])")
    ends, named = [], []
    for run in runs:
        if isinstance(run, tuple):
            ends.append(run)
            continue
        final = final_checkpoint(run)
        if not init_beside(final).is_file():
            raise LandscapeError(f"{final} has no init.ckpt beside it; MLI starts at the run's saved initialization")
        ends.append((str(init_beside(final)), str(final)))
        named.append(final)
    short = iter(distinct_labels(named) if named else [])
    labels = [f"run{k}" if isinstance(run, tuple) else next(short) for k, run in enumerate(runs)]
    sources = [end if isinstance(end, str) else f"run{k} (in memory)" for k, (_, end) in enumerate(ends)]
    return ends, labels, sources


def mli(
    runs: Sequence[RunLike],
    data: Data | None = None,
    points: int = 51,
    variants: Sequence[Variant] = ("all", "weights", "biases"),
    splits: Sequence[str] = ("train", "test"),
    plateau_tolerance: float = 0.05,
    mli_tolerance: float = 0.0,
    bn_batches: int | None = None,
    accelerator: str = "auto",
    progress: bool = True,
    hessian: HessianSettings | dict | None = None,
) -> MLIResult:
    """For each run, the line from its initialization to its final weights in every variant
    (``hessian``: curvature at each t in every path's rows, as ``interpolate``).

    A run is a final checkpoint (its init.ckpt lies beside it), a run folder (its newest last.ckpt),
    or an (initialization, final) pair of nn.Modules or checkpoints.
    """
    if plateau_tolerance < 0:
        raise LandscapeError(f"plateau_tolerance={plateau_tolerance} must be >= 0")
    ends, labels, sources = run_ends(runs)
    table: list[dict] = []
    paths: dict[tuple[str, str], PathResult] = {}
    for (init, final), label in zip(ends, labels):
        bias = last_layer_bias(as_network(final, "final").module)
        for variant in variants:
            path = interpolate(init, final, data, t_grid(0.0, 1.0, points), variant, "end", bn_batches, splits, mli_tolerance,
                               accelerator, progress, hessian=hessian)
            paths[(label, variant)] = path
            table += report_rows(label, variant, path.rows, path.summary, plateau_tolerance, bias)
    return MLIResult(table, paths, sources, plateau_tolerance)
