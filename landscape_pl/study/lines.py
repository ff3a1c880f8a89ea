"""The straight-line studies as stages: endpoints, the line between two of them on any t range
(interpolation-local-minima-question: local minima along it, t beyond [0, 1]) and the line from
each endpoint's initialization to its solution in the plateau paper's variants (mli-plateau-biases).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from landscape_pl.io import read_path_csv
from landscape_pl.reporting import write_table
from landscape_pl.study.endpoints import endpoint_stage, last_checkpoint
from landscape_pl.study.runner import Stage

LINE_COLUMNS = ("endpoints", "split", "loss_t_min", "loss_0", "barrier", "loss_1", "loss_t_max", "min_accuracy_0_1",
                "local_minima_t")


def line_stages(
    root: Path,
    endpoints: Mapping[str, Path],
    seeds: Sequence[int],
    overrides: Sequence[str],
    line_grid: tuple[float, float, int] | None,
    mli_variants: Sequence[str],
    mli_points: int,
    splits: Sequence[str],
    bn_batches: int | None,
    accelerator: str,
) -> list[Stage]:
    """Endpoint fits, one line per endpoint config (first two seeds), one MLI comparison over every
    endpoint, and the report; ``line_grid`` is (t_min, t_max, points) or None for no line."""
    from landscape_pl.commands.interpolate import interpolate
    from landscape_pl.commands.mli import mli

    stages: list[Stage] = []
    finals: dict[tuple[str, int], Path] = {}
    for name, config in endpoints.items():
        for seed in seeds:
            run = root / "endpoints" / name / f"seed{seed}"
            finals[(name, seed)] = last_checkpoint(run)
            stages.append(endpoint_stage(f"endpoint_{name}_seed{seed}", run, config, seed, overrides))
    lines: dict[str, Path] = {}
    if line_grid is not None:
        t_min, t_max, points = line_grid
        for name in endpoints:
            a, b = finals[(name, seeds[0])], finals[(name, seeds[1])]
            out = lines[name] = root / "line" / name
            stages.append(Stage(
                f"line_{name}",
                lambda a=a, b=b, out=out: interpolate(str(a), str(b), out=str(out), t_min=t_min, t_max=t_max, points=points,
                                                      splits=list(splits), bn_batches=bn_batches, accelerator=accelerator),
                [out / "path.csv", out / "summary.json", out / "path.png"],
                {"grid": line_grid, "splits": list(splits), "bn_batches": bn_batches},
                inputs=[a, b], depends=[f"endpoint_{name}_seed{seeds[0]}", f"endpoint_{name}_seed{seeds[1]}"]))
    mli_dir = root / "mli"
    if mli_variants:
        stages.append(Stage(
            "mli",
            lambda: mli([str(f) for f in finals.values()], out=str(mli_dir), points=mli_points, variants=list(mli_variants),
                        splits=list(splits), bn_batches=bn_batches, accelerator=accelerator),
            [mli_dir / "mli.csv", mli_dir / "mli.md", mli_dir / "mli.png"],
            {"variants": list(mli_variants), "points": mli_points, "splits": list(splits), "bn_batches": bn_batches},
            inputs=list(finals.values()), depends=[f"endpoint_{name}_seed{seed}" for name, seed in finals]))
    report = root / "report"
    stages.append(Stage(
        "report", lambda: write_report(lines, mli_dir if mli_variants else None, report), [report / "report.md"],
        {"lines": sorted(lines), "mli": bool(mli_variants)}, depends=[s.name for s in stages if not s.name.startswith("endpoint_")]))
    return stages


def line_rows(name: str, summary: dict, rows: list) -> list[dict]:
    """One table row per split: the loss at the grid's ends and at t = 0, 1, the barrier and the local minima."""
    table = []
    for split, numbers in summary.items():
        if not isinstance(numbers, dict) or "barrier" not in numbers:
            continue
        mine = sorted((r for r in rows if r.split == split), key=lambda r: r.key)
        table.append({"endpoints": name, "split": split, "loss_t_min": mine[0].loss, "loss_0": numbers["loss_start"],
                      "barrier": numbers["barrier"], "loss_1": numbers["loss_end"], "loss_t_max": mine[-1].loss,
                      "min_accuracy_0_1": numbers.get("min_accuracy_0_1"), "local_minima_t": numbers["local_minima_t"]})
    return table


def write_report(lines: Mapping[str, Path], mli_dir: Path | None, out: Path) -> None:
    """report.md (the line table, then the MLI table) and lines.csv, with the figures copied beside them."""
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    if lines:
        table = [row for name, folder in lines.items()
                 for row in line_rows(name, json.loads((folder / "summary.json").read_text()), read_path_csv(folder / "path.csv"))]
        parts.append("## Straight lines between endpoints\n\n" + write_table(table, LINE_COLUMNS, out / "lines"))
        for name, folder in lines.items():
            shutil.copy(folder / "path.png", out / f"line_{name}.png")
    if mli_dir is not None:
        parts.append("## Linear interpolation from initialization (MLI)\n\n" + (mli_dir / "mli.md").read_text())
        for name in ("mli.png", "mli.csv", "mli.md"):
            shutil.copy(mli_dir / name, out / name)
    (out / "report.md").write_text("\n".join(parts))
