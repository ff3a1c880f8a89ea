"""Path results as files (path.csv, summary.json, path.png) and as TensorBoard scalars and figures.

Every analysis that walks a path (lines, curves, strings) reports through here, so the files and
tags look the same whatever produced them.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from pathlib import Path

from landscape_pl.analysis.profile import summarize_profile
from landscape_pl.atomic import replacing, save_figure, write_text
from landscape_pl.io import write_json, write_path_csv
from landscape_pl.paths.evaluate import Row


def path_summary(rows: Sequence[Row], mli_tolerance: float = 0.0) -> dict:
    """Per split: barrier, max loss and min accuracy on [0, 1], MLI verdict, local minima, non-finite t."""
    splits = dict.fromkeys(r.split for r in rows)
    summary = {}
    for split in splits:
        mine = sorted((r for r in rows if r.split == split), key=lambda r: r.key)
        summary[split] = summarize_profile([r.key for r in mine], [r.loss for r in mine], [r.accuracy for r in mine], mli_tolerance)
        if summary[split]["nonfinite_t"]:
            warnings.warn(f"{split}: non-finite loss at t = {summary[split]['nonfinite_t']}", stacklevel=2)
    return summary


def write_path_report(rows: Sequence[Row], out: str | Path, summary: dict, title: str = "") -> Path:
    """path.csv, summary.json and path.png in ``out``."""
    from landscape_pl.plots import path_figure

    out = Path(out)
    write_path_csv(rows, out / "path.csv")
    write_json(summary, out / "summary.json")
    figure = path_figure(rows, title)
    save_figure(figure, out / "path.png")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return out


def log_path(experiment, rows: Sequence[Row], summary: dict, prefix: str, step: int = 0, profile: bool = True) -> None:
    """TensorBoard: the headline numbers at ``step``, the figure at ``step``, and (``profile``) the
    loss/accuracy of each grid point as scalars whose step is the grid index (t is in the figure), and
    each point's extras (curvature: the same on every split) as ``prefix/<name>``."""
    from landscape_pl.plots import path_figure

    for split, numbers in summary.items():
        for key in ("barrier", "max_loss_0_1", "min_accuracy_0_1", "mean_accuracy_0_1"):
            if numbers.get(key) is not None:  # None: unknown on this grid (summarize_profile's note)
                experiment.add_scalar(f"{prefix}/{split}/{key}", numbers[key], step)
    if profile:
        for split in summary:
            for index, row in enumerate(r for r in rows if r.split == split):
                experiment.add_scalar(f"{prefix}/{split}/loss", row.loss, index)
                if row.accuracy is not None:
                    experiment.add_scalar(f"{prefix}/{split}/accuracy", row.accuracy, index)
        for index, row in enumerate(r for r in rows if r.split == rows[0].split):
            for name, value in row.extras.items():
                experiment.add_scalar(f"{prefix}/{name}", value, index)
    experiment.add_figure(f"{prefix}/profile", path_figure(rows, prefix), step, close=True)
    experiment.flush()


def cell(value, digits: int = 4) -> str:
    """A table cell: empty for None, ``digits`` significant digits for floats (also inside lists)."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(cell(v, digits) for v in value) + "]"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def write_table(rows: Sequence[dict], columns: Sequence[str], stem: str | Path) -> str:
    """The same table as ``stem``.csv (full precision) and ``stem``.md; returns the markdown."""
    stem = Path(stem)
    with replacing(stem.with_suffix(".csv"), newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows({c: ("" if row.get(c) is None else row[c]) for c in columns} for row in rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    markdown = "\n".join(lines) + "\n"
    write_text(stem.with_suffix(".md"), markdown)
    return markdown
