"""The comparison of curve classes over endpoint pairs: the alignment paper's Tables 2, 4, 5 and Figure 2."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from landscape_pl.api.curves import EnsembleResult
from landscape_pl.api.lines import PathResult
from landscape_pl.atomic import copy_file, replacing, save_figure, write_text
from landscape_pl.io import write_json

# (column, heading, the paper's table), read from each evaluation's summary.json.
METRICS = (
    ("mean_accuracy", "mean test accuracy along the curve", "Table 2"),
    ("min_accuracy", "minimum test accuracy along the curve", "Table 4"),
    ("training_loss", "training loss at convergence", "Table 5"),
)


def metric(summary: dict, name: str, split: str) -> float:
    if name == "training_loss":
        value = summary.get("training_loss")
        return float(summary["train"]["mean_loss"] if value is None else value)
    return float(summary[split][name])


def class_table(evaluations: Mapping[tuple[str, int], PathResult], split: str = "test") -> list[dict]:
    """One row per curve class: mean and std over pairs of every metric."""
    classes = list(dict.fromkeys(cls for cls, _ in evaluations))
    rows = []
    for cls in classes:
        summaries = [result.summary for (c, _), result in evaluations.items() if c == cls]
        row: dict = {"class": cls, "pairs": len(summaries)}
        for name, _, _ in METRICS:
            values = np.array([metric(s, name, split) for s in summaries])
            row[name], row[f"{name}_std"] = float(values.mean()), float(values.std())
        rows.append(row)
    return rows


REPAIRED = "aligned_repair"  # the Aligned curve evaluated with REPAIR (study.alignment)


def markdown(rows: list[dict]) -> str:
    lines = []
    for name, heading, table in METRICS:
        percent = name != "training_loss"
        lines += [f"### {table}: {heading} (mean ± std over pairs)", "", "| class | value |", "|---|---|"]
        for row in rows:
            scale = 100 if percent else 1
            digits = 2 if percent else 4
            lines.append(f"| {row['class']} | {row[name] * scale:.{digits}f} ± {row[f'{name}_std'] * scale:.{digits}f}{' %' if percent else ''} |")
        if name == "training_loss" and any(row["class"] == REPAIRED for row in rows):
            lines += ["", (f"{REPAIRED} is the aligned curve evaluated with REPAIR: it was trained as that curve, so its "
                           "training loss is the aligned curve's.")]
        lines.append("")
    return "\n".join(lines)


def verdict(rows: list[dict]) -> str:
    """Whether aligned curves are at least as accurate along their length as unaligned ones, plainly."""
    by_class = {row["class"]: row for row in rows}
    if "aligned" not in by_class or "unaligned" not in by_class:
        return "aligned and unaligned curves were not both trained: no comparison"
    aligned, unaligned = by_class["aligned"]["mean_accuracy"], by_class["unaligned"]["mean_accuracy"]
    if aligned >= unaligned:
        said = f"aligned curves are at least as accurate along their length as unaligned ones ({aligned:.2%} vs {unaligned:.2%})"
    else:
        said = f"on this data aligned curves are NOT as accurate along their length as unaligned ones ({aligned:.2%} vs {unaligned:.2%})"
    if REPAIRED in by_class:
        repaired = by_class[REPAIRED]
        said += (f"; REPAIR takes the aligned curves' mean accuracy to {repaired['mean_accuracy']:.2%} and their worst point "
                 f"from {by_class['aligned']['min_accuracy']:.2%} to {repaired['min_accuracy']:.2%}")
    return said


def accuracy_figure(evaluations: Mapping[tuple[str, int], PathResult], split: str = "test"):
    """Figure 2: accuracy along the curve per class, mean over pairs with a band of ± one std."""
    from landscape_pl.plots import plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for cls in dict.fromkeys(c for c, _ in evaluations):
        profiles = []
        for (c, _), result in evaluations.items():
            if c == cls:
                rows = sorted((r for r in result.rows if r.split == split), key=lambda r: r.key)
                ts, profiles = [r.key for r in rows], profiles + [[r.accuracy for r in rows]]
        values = np.array(profiles, dtype=float)
        mean, std = values.mean(0), values.std(0)
        ax.plot(ts, mean, label=cls)
        ax.fill_between(ts, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("t")
    ax.set_ylabel(f"{split} accuracy")
    ax.legend()
    fig.tight_layout()
    return fig


ALIGNMENT_COLUMNS = ("pair", "correlation_before", "correlation_after", "barrier_unaligned_train", "barrier_aligned_train",
                     "barrier_unaligned_test", "barrier_aligned_test", "midpoint_accuracy_unaligned_test",
                     "midpoint_accuracy_aligned_test")
REPAIR_COLUMNS = ("barrier_aligned_repair_train", "barrier_aligned_repair_test", "midpoint_accuracy_aligned_repair_test")


def alignment_columns(reports: Mapping[int, dict]) -> tuple[str, ...]:
    """The alignment table's columns: the REPAIRed line's only when a pair walked it."""
    repaired = any(REPAIRED in report.get("barrier", {}) for report in reports.values())
    return ALIGNMENT_COLUMNS + (REPAIR_COLUMNS if repaired else ())


def alignment_rows(reports: Mapping[int, dict]) -> list[dict]:
    """One row per pair from its align report: mean cross-correlation before/after (Figure 1b), the lines'
    barriers and test accuracies at t = 0.5 (unaligned, aligned, and aligned with REPAIR when walked)."""
    rows = []
    for pair, report in reports.items():
        barrier, midpoint = report.get("barrier", {}), report.get("midpoint_accuracy", {})
        kinds = ("unaligned", "aligned", REPAIRED)
        rows.append({"pair": pair, "correlation_before": report["mean_correlation"]["before"],
                     "correlation_after": report["mean_correlation"]["after"],
                     **{f"barrier_{kind}_{split}": barrier.get(kind, {}).get(split) for kind in kinds for split in ("train", "test")},
                     **{f"midpoint_accuracy_{kind}_test": midpoint.get(kind, {}).get("test") for kind in kinds}})
    return rows


def ensemble_rows(tables: Mapping[tuple[str, int], EnsembleResult]) -> list[dict]:
    """Every ensemble table of the study, each row tagged with its curve class and pair (section 5)."""
    return [{"class": cls, "pair": pair, **row} for (cls, pair), result in tables.items() for row in result.rows]


def write_report(evaluations: Mapping[tuple[str, int], PathResult], out: Path, alignments: Mapping[int, dict] | None = None,
                 ensembles: Mapping[tuple[str, int], EnsembleResult] | None = None, figures: Mapping[str, Path] | None = None) -> dict:
    """tables.csv, tables.md (with the verdict), accuracy_along_curve.png, report.json, and TensorBoard;
    with ``alignments`` (pair -> align report) and ``ensembles`` ((class, pair) -> ensemble table)
    also alignment.csv/.md and ensembles.csv/.md, and ``figures`` (name -> PNG, e.g. the planes) copied
    in as <name>.png, so the report folder holds every table and figure of the study."""
    from torch.utils.tensorboard import SummaryWriter

    from landscape_pl.reporting import write_table

    out.mkdir(parents=True, exist_ok=True)
    for name, figure_path in (figures or {}).items():
        copy_file(figure_path, out / f"{name}.png")
    rows = class_table(evaluations)
    with replacing(out / "tables.csv", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    said = verdict(rows)
    write_text(out / "tables.md", markdown(rows) + f"\n**Verdict:** {said}\n")
    figure = accuracy_figure(evaluations)
    save_figure(figure, out / "accuracy_along_curve.png")
    with SummaryWriter(str(out / "tensorboard")) as writer:
        writer.add_figure("study/accuracy_along_curve", figure, 0, close=True)
        writer.add_text("study/tables", markdown(rows) + f"\n\n{said}", 0)
        if alignments:
            writer.add_text("study/alignment", write_table(alignment_rows(alignments), alignment_columns(alignments),
                                                           out / "alignment"), 0)
        if ensembles:
            writer.add_text("study/ensembles", write_table(ensemble_rows(ensembles), ("class", "pair", "ensemble", "members",
                                                                                      "accuracy", "loss"), out / "ensembles"), 0)
    report = {"classes": rows, "verdict": said}
    write_json(report, out / "report.json")
    return report
