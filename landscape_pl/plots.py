"""Figures people would rather look at than read: loss and accuracy along a path."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import matplotlib

if "ipykernel" not in sys.modules:  # files, not windows, from scripts and clusters; notebooks keep inline figures
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from landscape_pl.paths.evaluate import Row  # noqa: E402


def path_figure(rows: Sequence[Row], title: str = "", x_label: str = "t") -> plt.Figure:
    """Loss (left) and accuracy (right, when there is any) against t, one line per split; ends marked."""
    splits = list(dict.fromkeys(r.split for r in rows))
    has_accuracy = any(r.accuracy is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if has_accuracy else 1, figsize=(10 if has_accuracy else 5.5, 3.8), squeeze=False)
    for split in splits:
        mine = [r for r in rows if r.split == split]
        ts = [r.key for r in mine]
        axes[0, 0].plot(ts, [r.loss for r in mine], marker=".", label=split)
        if has_accuracy:
            axes[0, 1].plot(ts, [r.accuracy for r in mine], marker=".", label=split)
    for ax, name in zip(axes[0], ("loss", "accuracy")):
        for end in (0.0, 1.0):
            ax.axvline(end, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel(x_label)
        ax.set_ylabel(name)
        ax.legend()
    finite = [r.loss for r in rows if r.finite]
    axes[0, 0].set_yscale("log" if finite and min(finite) > 0 else "linear")  # no finite point: nothing to log-scale
    fig.suptitle(title)
    fig.tight_layout()
    return fig
