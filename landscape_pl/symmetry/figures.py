"""Figures of the alignment report: cross-correlation heatmaps (Figure 1a) and signatures (Figures 1b, 14)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from landscape_pl.plots import plt


def heatmaps(matrix: torch.Tensor, p: torch.Tensor, title: str) -> plt.Figure:
    """The cross-correlation with B's original unit order (left) and reindexed by the alignment (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, shown, label in ((axes[0], matrix, "before alignment"), (axes[1], matrix[:, p], "after alignment")):
        image = ax.imshow(shown.numpy(), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(label)
        ax.set_xlabel("unit of end network")
    axes[0].set_ylabel("unit of start network")
    fig.colorbar(image, ax=axes, shrink=0.8, label="cross-correlation")
    fig.suptitle(title)
    return fig


def signature_figure(curves: Mapping[str, Mapping[str, float]], title: str, ax: plt.Axes | None = None) -> plt.Figure:
    """Mean cross-correlation of corresponding units per layer, one line per curve (e.g. before/after)."""
    fig = plt.figure(figsize=(7, 3.8)) if ax is None else ax.figure
    ax = ax or fig.add_subplot(1, 1, 1)
    for label, values in curves.items():
        ax.plot(range(1, len(values) + 1), list(values.values()), marker="o", label=label)
    names = list(next(iter(curves.values())))
    ax.set_xticks(range(1, len(names) + 1), names, rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("layer (permutation group)")
    ax.set_ylabel("mean cross-correlation")
    ax.set_ylim(min(0.0, *(v for c in curves.values() for v in c.values())) - 0.05, 1.05)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
