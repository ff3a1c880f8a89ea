"""``lines``: the straight-line studies in one resumable command.

Endpoints trained from seeds, the line between two of them on any t range (the question of
interpolation-local-minima-question.txt: loss and accuracy for t in [-1, 2] on train and test data)
and the line from each endpoint's initialization to its solution, moving all parameters, weights
only or biases only (mli-plateau-biases.txt). With no config it is the one-minute demo on the
bundled digits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from landscape_pl.api.mli import Variant
from landscape_pl.errors import LandscapeError
from landscape_pl.paths.grid import t_grid
from landscape_pl.recipes import find_config
from landscape_pl.study.lines import line_stages
from landscape_pl.study.runner import Outcomes, run_stages


def lines(
    out: str = "runs/lines",
    endpoints: dict[str, str] = {"mlp": "configs/digits/mlp.yaml"},  # noqa: B006 - jsonargparse needs a literal default
    seeds: list[int] = [1, 2],  # noqa: B006
    epochs: int | None = None,
    overrides: list[str] = [],  # noqa: B006
    line: bool = True,
    t_range: tuple[float, float] = (-1.0, 2.0),
    points: int = 91,
    splits: list[Literal["train", "test"]] = ["train", "test"],  # noqa: B006
    mli: list[Variant] = ["all", "weights", "biases"],  # noqa: B006
    mli_points: int = 51,
    bn_batches: int | None = None,
    accelerator: str = "auto",
    repair: bool = False,
) -> dict:
    """Train the endpoints, walk the lines, and write ``out/report`` (report.md, lines.csv, mli.csv, figures).

    Every stage is skipped when its outputs exist for the same settings, so an interrupted run
    resumes and a changed config reruns only what it affects; ``tensorboard --logdir out`` shows
    the endpoint runs and every path.

    Args:
        out: the study's folder.
        endpoints: name -> endpoint fit config (a path, or relative to configs/); each is trained once per seed.
        seeds: a seed sets initialization and data order; the line joins the first two seeds' networks.
        epochs: override every endpoint config's max_epochs.
        overrides: command-line options added to every endpoint fit, e.g. ``--model.init_args.network.init_args.widths=[500]``.
        line: walk the line between the first two seeds' endpoints of each config.
        t_range: the line's first and last t (t < 0 and t > 1 extrapolate).
        points: grid points of the line, ends included (91 on [-1, 2] is a step of 1/30).
        splits: data splits every path is evaluated on.
        mli: variants of the line from initialization to each endpoint (empty: none): all parameters
            move, weights only (biases held at their final values), or biases only.
        mli_points: grid points of each MLI path on [0, 1].
        bn_batches: training batches for BatchNorm statistics at each t; None a full pass, 0 off.
        accelerator: cpu, cuda or auto for the evaluations.
        repair: walk the lines between endpoints with REPAIR at every t (units given the mixture of the two
            endpoints' mean and std); the MLI paths are walked as they are.
    """
    if not endpoints:
        raise LandscapeError("endpoints is empty: give at least one name: config, e.g. {mlp: configs/digits/mlp.yaml}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise LandscapeError(f"seeds={seeds}: give distinct seeds, at least one")
    if line and len(seeds) < 2:
        raise LandscapeError(f"line: true needs two seeds (seeds={seeds}); add a seed or set line: false")
    if not line and not mli:
        raise LandscapeError("nothing to do: line is false and mli is empty")
    root = Path(out)
    configs = {name: find_config(config) for name, config in endpoints.items()}
    fits = [*overrides] + ([] if epochs is None else [f"--trainer.max_epochs={epochs}"])
    grid = (float(t_range[0]), float(t_range[1]), points) if line else None
    if grid is not None:  # a bad grid fails now, not after the endpoints are trained
        ts = t_grid(*grid)
        missing = [end for end in (0.0, 1.0) if ts[0] <= end <= ts[-1] and end not in ts]
        if missing:
            raise LandscapeError(f"points={points} on t_range={list(t_range)} misses t = {missing}, where the endpoints "
                                 "are: choose points so that (t_max - t_min) / (points - 1) divides 1 (e.g. 91 on [-1, 2])")
    outcomes = Outcomes()
    run_stages(line_stages(root, configs, seeds, fits, grid, mli, mli_points, splits, bn_batches, accelerator, outcomes, repair), root,
               outcomes=outcomes)
    report = root / "report"
    print((report / "report.md").read_text())
    print(f"report in {report}; tensorboard --logdir {root}")
    return {"report": str(report)}
