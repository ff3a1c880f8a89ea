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
    """Loss (left) and accuracy (right, when there is any) against t, one line per split; ends marked.
    Rows with extras (curvature) get one more panel: each extra against t, ± its ``<name>_se`` shaded."""
    splits = list(dict.fromkeys(r.split for r in rows))
    has_accuracy = any(r.accuracy is not None for r in rows)
    has_extras = any(r.extras for r in rows)
    panels = 1 + has_accuracy + has_extras
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels + 0.5 * (panels == 1), 3.8), squeeze=False)
    for split in splits:
        mine = [r for r in rows if r.split == split]
        ts = [r.key for r in mine]
        axes[0, 0].plot(ts, [r.loss for r in mine], marker=".", label=split)
        if has_accuracy:
            axes[0, 1].plot(ts, [r.accuracy for r in mine], marker=".", label=split)
    if has_extras:
        extras_panel(axes[0, -1], [r for r in rows if r.split == splits[0]])
    for ax, name in zip(axes[0], ("loss", "accuracy")[: 1 + has_accuracy] + ("curvature",) * has_extras):
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


def extras_panel(ax: plt.Axes, rows: Sequence[Row]) -> None:
    """Each extra of one split's rows against t (they are the same on every split's rows of a point)."""
    names = list(dict.fromkeys(name for r in rows for name in r.extras))
    for name in (n for n in names if not n.endswith("_se")):
        mine = [r for r in rows if name in r.extras]
        ts, values = [r.key for r in mine], [r.extras[name] for r in mine]
        (line,) = ax.plot(ts, values, marker=".", label=name)
        if f"{name}_se" in names:
            errors = [r.extras.get(f"{name}_se", 0.0) for r in mine]
            ax.fill_between(ts, [v - e for v, e in zip(values, errors)], [v + e for v, e in zip(values, errors)],
                            color=line.get_color(), alpha=0.2, linewidth=0)
