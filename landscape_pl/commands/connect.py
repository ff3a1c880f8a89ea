"""``connect``: Dynamic String Sampling between two networks (Freeman & Bruna 2017, algorithm 1 / appendix A).

The verdict is "connected" (every segment of the string is below L0: a certificate) or "not connected
within budget" — never "disconnected", which the algorithm cannot certify. The search is
``landscape_pl.api.strings.connect``; this command finds the ends (given, trained from a config, a
permuted copy, or those of the string being resumed) and writes the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.cli import OptimizerCallable

from landscape_pl.api import strings
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.layout import claim
from landscape_pl.paths.curvature import HessianSettings
from landscape_pl.search import Budget, check_settings
from landscape_pl.study.strings import string_ends


def connect(
    threshold: float,
    start: str | None = None,
    end: str | None = None,
    out: str = "runs/connect",
    data: LandscapeDataModule | None = None,
    endpoint_config: str | None = None,
    seeds: tuple[int, int] = (1, 2),
    epochs: int | None = None,
    end_permutation: dict[str, list[int]] | None = None,
    train_ends: bool = False,
    algorithm: Literal["greedy", "constrained"] = "greedy",
    alpha: float = 0.8,
    insert_at: Literal["max", "midpoint"] = "max",
    points: int = 21,
    split: Literal["train", "test"] = "train",
    optimizer: OptimizerCallable = torch.optim.Adam,
    bead_steps: int = 500,
    check_every: int = 10,
    max_beads: int = 30,
    max_depth: int = 8,
    max_steps: int | None = None,
    max_rounds: int = 20,
    zeta: float = 0.0,
    kappa: float = 0.0,
    seed: int = 0,
    accelerator: str = "cpu",
    tensorboard: bool = True,
    progress: bool = True,
    hessian: HessianSettings | None = None,
) -> dict:
    """Connect two networks by a string of beads whose interpolated loss stays below ``threshold``.

    Args:
        threshold: L0, the loss level the whole string must stay below (on ``split``).
        start: checkpoint of one end (any landscape_pl checkpoint: endpoint, bead, curve point).
        end: checkpoint of the other end.
        out: folder of the string (beads/, string.json) and the report; an existing string there is resumed.
        data: data module; default: the one in the start run's saved config.yaml.
        endpoint_config: endpoint (fit) config to train both ends from ``seeds`` when no start/end is given.
        seeds: initialization and data-order seeds of the two ends trained from ``endpoint_config``.
        epochs: override the config's max_epochs for the ends.
        end_permutation: instead of ``end``, the start with its units permuted, e.g. ``{"layers.1": [1, 0, 2]}``.
        train_ends: train ends that are above L0 down to alpha * L0 first (otherwise that is an error).
        algorithm: "greedy" (algorithm 1, depth first) or "constrained" (appendix A, breadth first).
        alpha: beads are trained until their loss is below alpha * L0.
        insert_at: a new bead starts at the segment's interpolated maximum ("max") or halfway ("midpoint").
        points: t grid points per segment, ends included.
        split: data split on which losses are measured (bead stopping and segment maxima).
        optimizer: bead optimizer, e.g. ``{class_path: torch.optim.Adam, init_args: {lr: 0.01}}``.
        bead_steps: most training steps per bead (greedy) or per round (constrained).
        check_every: steps between two checks of a bead's loss against alpha * L0.
        max_beads: budget: most beads between the ends.
        max_depth: budget: deepest recursion level of a bead (ends are depth 0).
        max_steps: budget: total training steps over all beads (None: no limit).
        max_rounds: budget of the constrained variant: rounds of training all beads.
        zeta: spring term of the constrained variant.
        kappa: hyperplane term of the constrained variant.
        seed: base seed; bead k trains from seed + k.
        accelerator: cpu, cuda or auto (for tiny nets the CPU is fastest).
        tensorboard: log the string's profile and PCA view per depth (``out/tensorboard``).
        progress: show a progress bar over beads.
        hessian: each bead's curvature on a seeded training subset, as extra columns of path.csv (e.g.
            ``--hessian.top_k 2 --hessian.trace_samples 10``); default none.
    """
    budget = Budget(max_beads, max_depth, max_steps, max_rounds)
    check_settings(threshold, alpha, points, budget, bead_steps, check_every)  # refused before any end is trained
    with claim(Path(out)):  # the ends trained into out/ends belong to this run too
        start, end = string_ends(Path(out), start, end, endpoint_config, seeds, epochs, end_permutation)
        result = strings.connect(
            start, end, data, threshold=threshold, folder=out, train_ends=train_ends, algorithm=algorithm, alpha=alpha,
            insert_at=insert_at, points=points, split=split, optimizer=optimizer, bead_steps=bead_steps, check_every=check_every,
            max_beads=max_beads, max_depth=max_depth, max_steps=max_steps, max_rounds=max_rounds, zeta=zeta, kappa=kappa,
            seed=seed, accelerator=accelerator, progress=progress, hessian=hessian,
        )
        result.save(out, tensorboard)
    print(result.headline())
    return result.summary
