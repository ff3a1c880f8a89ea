"""``mli``: monotonic linear interpolation from a run's initialization to its final weights, in the
three variants of the plateau paper (all parameters, weights only, biases only; what does not move is
held at its final value), with the MLI verdict, the plateau length and the spread of the final
last-layer biases across classes, which the paper ties to the plateau."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from torch import nn

from landscape_pl.analysis.profile import plateau_length
from landscape_pl.commands.interpolate import interpolate
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network, read_path_csv, write_json
from landscape_pl.labels import distinct_labels
from landscape_pl.paths import Row
from landscape_pl.reporting import write_table

Variant = Literal["all", "weights", "biases"]
COLUMNS = ("run", "variant", "split", "monotonic", "first_increase_t", "plateau_length", "loss_start", "loss_end",
           "max_loss", "min_accuracy", "last_bias_spread", "last_bias_std")


def final_checkpoint(path: str) -> Path:
    """A checkpoint as given, or a run folder's newest ``checkpoints/last.ckpt``."""
    given = Path(path)
    if given.is_dir():
        found = sorted(given.glob("**/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise LandscapeError(f"run folder {path!r} holds no checkpoints/last.ckpt; pass the final checkpoint itself")
        return found[-1]
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


def mli(
    runs: list[str],
    out: str = "runs/mli",
    data: LandscapeDataModule | None = None,
    points: int = 51,
    variants: list[Variant] = ["all", "weights", "biases"],  # noqa: B006 - jsonargparse needs a literal default
    splits: list[Literal["train", "test"]] = ["train", "test"],  # noqa: B006
    plateau_tolerance: float = 0.05,
    mli_tolerance: float = 0.0,
    bn_batches: int | None = None,
    accelerator: str = "auto",
    tensorboard: bool = True,
    progress: bool = True,
) -> dict:
    """For each run, the line from its saved init.ckpt to its final weights, per variant; writes mli.csv,
    mli.md (one table), mli.json and mli.png (all profiles), and each path's files under ``out/<run>/<variant>``.

    Args:
        runs: final checkpoints (their init.ckpt lies next to them) or run folders (their last.ckpt).
        out: report folder.
        data: data module; default: the one in each run's saved config.yaml.
        points: grid points on t in [0, 1].
        variants: all (every entry moves), weights (biases held at their final values), biases (weights held).
        splits: data splits to evaluate on.
        plateau_tolerance: the plateau lasts while the loss stays within this (absolute) of its value at t = 0.
        mli_tolerance: a rise of the loss larger than this breaks monotonicity.
        bn_batches: training batches for BatchNorm statistics at each t; None a full pass, 0 off.
        accelerator: cpu, cuda or auto.
        tensorboard: also log the figure and the table's numbers.
        progress: show progress bars.
    """
    if not runs:
        raise LandscapeError("give at least one run (--runs [final.ckpt, ...])")
    if plateau_tolerance < 0:
        raise LandscapeError(f"plateau_tolerance={plateau_tolerance} must be >= 0")
    finals = [final_checkpoint(r) for r in runs]
    labels = distinct_labels(finals)
    target = Path(out)
    table: list[dict] = []
    profiles: dict[tuple[str, str], list[Row]] = {}
    for final, label in zip(finals, labels):
        if not (final.parent / "init.ckpt").is_file():
            raise LandscapeError(f"{final} has no init.ckpt beside it; MLI starts at the run's saved initialization")
        bias = last_layer_bias(load_network(final).network)
        for variant in variants:
            folder = target / label.replace("/", "_") / variant
            summary = interpolate("init", str(final), out=str(folder), data=data, t_min=0.0, t_max=1.0, points=points,
                                  splits=splits, move=variant, hold="end", bn_batches=bn_batches, mli_tolerance=mli_tolerance,
                                  accelerator=accelerator, tensorboard=False, progress=progress)
            rows = read_path_csv(folder / "path.csv")
            profiles[(label, variant)] = rows
            table += report_rows(label, variant, rows, summary, plateau_tolerance, bias)
    write_table(table, COLUMNS, target / "mli")
    result = {"runs": [str(f) for f in finals], "plateau_tolerance": plateau_tolerance, "table": table}
    write_json(result, target / "mli.json")
    fig = figure(profiles, plateau_tolerance)
    fig.savefig(target / "mli.png", dpi=120)
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(target / "tensorboard")) as writer:
            for row in table:
                writer.add_scalar(f"mli/{row['run']}/{row['variant']}/{row['split']}/plateau_length", row["plateau_length"], 0)
            writer.add_figure("mli/profiles", fig, 0, close=False)
    from landscape_pl.plots import plt

    plt.close(fig)
    print((target / "mli.md").read_text())
    return result
