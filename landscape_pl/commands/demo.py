"""``demo``: the main job on the embedded default data, start to finish in a minute or two on a CPU.

Two endpoints trained from different seeds on scikit-learn's digits, the straight line between them
for t in [-1, 2] (the question of interpolation-local-minima-question.txt), and the line from one
endpoint's initialization to its solution (monotonic linear interpolation).
"""

from __future__ import annotations

import json
from pathlib import Path

from landscape_pl.commands.common import fit_run
from landscape_pl.commands.interpolate import interpolate
from landscape_pl.errors import LandscapeError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def find_config(config: str) -> Path:
    """A config path as given, else relative to the repository's configs/ folder."""
    for candidate in (Path(config), CONFIGS / config, CONFIGS.parent / config):
        if candidate.is_file():
            return candidate
    raise LandscapeError(f"config {config!r} not found (looked in the current folder and {CONFIGS})")


def demo(
    out: str = "runs/demo",
    config: str = "configs/digits/mlp.yaml",
    seeds: tuple[int, int] = (1, 2),
    epochs: int | None = None,
    points: int = 31,
) -> dict:
    """Train two endpoints, then write the line between them and the MLI path from initialization.

    Args:
        out: output folder (endpoints, ``line/`` and ``mli/`` with path.csv, summary.json, path.png).
        config: endpoint config (a path, or relative to configs/).
        seeds: initialization and data-order seeds of the two endpoints.
        epochs: override the config's max_epochs.
        points: grid points of each path.
    """
    root, config_path = Path(out), find_config(config)
    epochs_args = [] if epochs is None else [f"--trainer.max_epochs={epochs}"]
    a, b = (fit_run(config_path, root / f"endpoint_seed{seed}", f"--seed_everything={seed}",
                    f"--model.init_args.init_seed={seed}", f"--data.init_args.data_seed={seed}", *epochs_args)
            for seed in seeds)
    line = interpolate(str(a), str(b), out=str(root / "line"), t_min=-1.0, t_max=2.0, points=points, progress=False)
    mli = interpolate("init", str(a), out=str(root / "mli"), t_min=0.0, t_max=1.0, points=points, progress=False)
    report = {"line": {k: line[k] for k in ("train", "test")}, "mli": {k: mli[k] for k in ("train", "test")}}
    print(json.dumps({part: {s: {k: v for k, v in r[s].items() if k in ("barrier", "monotonic", "local_minima_t")}
                             for s in r} for part, r in report.items()}, indent=1))
    print(f"results in {root}/line and {root}/mli; tensorboard --logdir {root}")
    return report
