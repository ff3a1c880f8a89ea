"""``merge``: N networks of one architecture aligned to a reference, averaged and fixed up into one checkpoint.

Writes ``merged.ckpt`` (an ordinary checkpoint: ``validate``, ``interpolate`` and ``align`` take it),
``merge.csv``/``merge.md`` (each endpoint, the unaligned average, the aligned average, the merged
network and the ensemble, loss and accuracy per split), ``merge.json``, ``permutations.json`` and ``merge.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from landscape_pl.api.merge import merge as merge_networks
from landscape_pl.data.base import LandscapeDataModule


def merge(
    ckpts: list[str],
    out: str = "runs/merge",
    method: Literal["activation", "weight"] = "activation",
    reference: int | Literal["average"] = 0,
    fixup: Literal["none", "reset", "repair"] = "reset",
    data: LandscapeDataModule | None = None,
    rounds: int = 10,
    fraction: float = 0.2,
    seed: int = 0,
    splits: list[Literal["train", "test"]] = ["train", "test"],  # noqa: B006 - jsonargparse needs a literal default
    bn_batches: int | None = None,
    accelerator: str = "auto",
    tensorboard: bool = True,
    progress: bool = True,
) -> dict:
    """Merge ``ckpts``: align each to the reference, average, fix up; write the merged checkpoint and the table.

    Args:
        ckpts: two or more checkpoints of one architecture.
        out: output folder.
        method: activation (correlation of activations on training data) or weight matching.
        reference: index of the checkpoint whose unit order the others take, or average (each aligned to
            the average of the others, round after round until no permutation changes).
        fixup: none, reset (BatchNorm statistics recomputed) or repair (then each unit's mean and std set to the
            mean of the aligned endpoints').
        data: data module; default: the one in the last checkpoint's run config.yaml.
        rounds: the most rounds of alignment to the average.
        fraction: share of the training split activations are computed on.
        seed: which random subset of the training split.
        splits: splits every network is evaluated on.
        bn_batches: training batches statistics are recomputed on (default: one full pass).
        accelerator: cpu, cuda or auto.
        tensorboard: also write the figure to ``out/tensorboard``.
        progress: show progress bars.
    """
    result = merge_networks(ckpts, data, method, reference, fixup, rounds, fraction, seed, splits, bn_batches, accelerator, progress)
    result.save(out, tensorboard)
    print(f"wrote {Path(out) / 'merged.ckpt'} and merge.md in {out}:\n{(Path(out) / 'merge.md').read_text()}")
    return json.loads((Path(out) / "merge.json").read_text())["summary"]
