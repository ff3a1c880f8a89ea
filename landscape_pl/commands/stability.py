"""``stability``: Frankle et al. (2020)'s instability analysis in one resumable command.

A parent trained from one initialization, two children spawned from its whole training state at each
step k with data orders of their own, the error barrier between the children vs k, and the first k
from which the network is stable to SGD noise. With no config it is the small twin on the digits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from landscape_pl.study.stability import stability as run_stability
from landscape_pl.study.stability import verdict


def stability(
    endpoint_config: str = "configs/digits/stability_mlp.yaml",
    out: str = "runs/stability",
    steps: list[int] = [0, 25, 100, 250, 400],  # noqa: B006 - jsonargparse needs a literal default
    seed: int = 1,
    data_seeds: tuple[int, int] = (2, 3),
    overrides: list[str] = [],  # noqa: B006
    points: int = 11,
    splits: list[Literal["train", "test"]] = ["train", "test"],  # noqa: B006
    split: Literal["train", "test"] = "test",
    threshold: float = 0.02,
    align: Literal["activation", "weight"] | None = None,
    bn_batches: int | None = None,
    accelerator: str = "auto",
) -> dict:
    """Train a parent and two children per spawn step, walk the line between each pair, report the barrier vs step.

    ``out/report`` holds stability.csv/.md (the barriers per step, split and kind), stability.png (barrier vs
    step) and summary.json (with ``stable_from``); ``tensorboard --logdir out`` shows every run and the barriers
    at step = k.

    Every stage is skipped when its outputs exist for the same settings: an interrupted run resumes.

    Args:
        endpoint_config: fit config of parent and children (a path or a recipe name); its max_epochs is the training length.
        out: the study's folder.
        steps: spawn steps k in optimizer steps (0: the initialization), at most the training length.
        seed: the parent's initialization and data order.
        data_seeds: the two children's data-order seeds (the same at every k).
        overrides: options added to every fit, e.g. ``--trainer.max_epochs=3``.
        points: grid points of each line on [0, 1].
        splits: splits every line is evaluated on.
        split: the split the stable-from step is read on.
        threshold: stable when the error barrier is below this (0.02: 2 percentage points of error).
        align: also the line to the second child aligned to the first (activation or weight matching).
        bn_batches: training batches for BatchNorm statistics at each t; None a full pass, 0 off.
        accelerator: cpu, cuda or auto for the evaluations.
    """
    result = run_stability(endpoint_config, out, steps, seed, data_seeds, overrides, points, splits, split, threshold, align, bn_batches,
                           accelerator)
    report = Path(out) / "report"
    print((report / "stability.md").read_text())
    print(f"{verdict(result.summary)}\nreport in {report}; tensorboard --logdir {out}")
    return {"report": str(report), "stable_from": result.summary["stable_from"]}
