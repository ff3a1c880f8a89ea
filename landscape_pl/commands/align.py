"""``align``: permute the end network's units to match the start network's, and show what it changes.

Writes ``aligned.ckpt`` (the end network permuted: the same function, an ordinary checkpoint),
``permutation.json``, ``report.json`` (per layer mean cross-correlation of corresponding units
before/after, dead units, both loss barriers), heatmaps of the cross-correlation matrices
(``heatmaps/*.png`` and TensorBoard), ``mean_correlation.png`` (Figure 1b of the alignment paper)
and the straight lines start → end (``unaligned/``) and start → aligned end (``aligned/``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from landscape_pl.api import alignment
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.data.saved import resolve_data


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
    repair: bool = False,
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
        repair: also the line start -> aligned end with REPAIR at every t (``aligned_repair/``); the
            report gains its barrier and midpoint accuracy next to the unaligned and aligned lines'.
    """
    result = alignment.align(start, end, resolve_data(data, end), method, fraction, seed, points, splits, bn_batches, accelerator,
                             progress, repair)
    result.save(out, tensorboard)
    print(f"wrote {Path(out) / 'aligned.ckpt'}, permutation.json and report.json in {out}")
    return json.loads((Path(out) / "report.json").read_text())
