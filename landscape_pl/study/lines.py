"""The straight-line studies as stages: endpoints, the line between two of them on any t range
(interpolation-local-minima-question: local minima along it, t beyond [0, 1]) and the line from
each endpoint's initialization to its solution in the plateau paper's variants (mli-plateau-biases).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from landscape_pl.api.lines import PathResult, interpolate
from landscape_pl.api.mli import COLUMNS as MLI_COLUMNS
from landscape_pl.api.mli import MLIResult, mli
from landscape_pl.atomic import write_text
from landscape_pl.layout import Study, components
from landscape_pl.paths.grid import t_grid
from landscape_pl.reporting import write_table
from landscape_pl.study.endpoints import endpoint_stage
from landscape_pl.study.runner import Outcomes, Stage

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
    outcomes: Outcomes,
    repair: bool = False,
) -> list[Stage]:
    """Endpoint fits, one line per endpoint config (first two seeds), one MLI comparison over every
    endpoint, and the report; ``line_grid`` is (t_min, t_max, points) or None for no line; ``repair``
    walks those lines with REPAIR at every t (``symmetry.repair``). Each stage leaves its result in
    ``outcomes`` for the report."""
    components(endpoints, "endpoints")  # each name is a folder under endpoints/ and line/
    layout = Study(root)
    stages: list[Stage] = []
    finals: dict[tuple[str, int], Path] = {}
    for name, config in endpoints.items():
        for seed in seeds:
            run = layout.endpoint(seed, name)
            finals[(name, seed)] = run.last
            stages.append(endpoint_stage(f"endpoint_{name}_seed{seed}", run, config, seed, overrides))
    lines: list[str] = []
    if line_grid is not None:
        ts = t_grid(*line_grid)
        for name in endpoints:
            a, b = finals[(name, seeds[0])], finals[(name, seeds[1])]
            out = layout.line(name)
            lines.append(name)
            stages.append(Stage(
                f"line_{name}",
                lambda a=a, b=b, out=out: saved(interpolate(str(a), str(b), t=ts, splits=list(splits), bn_batches=bn_batches,
                                                            accelerator=accelerator, repair=repair), out, tensorboard=True),
                [out / "path.csv", out / "summary.json", out / "path.png"],
                {"grid": line_grid, "splits": list(splits), "bn_batches": bn_batches, **({"repair": True} if repair else {})},
                inputs=[a, b], depends=[f"endpoint_{name}_seed{seeds[0]}", f"endpoint_{name}_seed{seeds[1]}"],
                load=lambda out=out: PathResult.load(out, "interpolate")))
    if mli_variants:
        stages.append(Stage(
            "mli",
            lambda: saved(mli([str(f) for f in finals.values()], points=mli_points, variants=list(mli_variants), splits=list(splits),
                              bn_batches=bn_batches, accelerator=accelerator), layout.mli, tensorboard=True),
            [layout.mli / "mli.csv", layout.mli / "mli.md", layout.mli / "mli.png"],
            {"variants": list(mli_variants), "points": mli_points, "splits": list(splits), "bn_batches": bn_batches},
            inputs=list(finals.values()), depends=[f"endpoint_{name}_seed{seed}" for name, seed in finals],
            load=lambda: MLIResult.load(layout.mli)))
    report = layout.report
    stages.append(Stage(
        "report",
        lambda: write_report({name: outcomes[f"line_{name}"] for name in lines}, outcomes["mli"] if mli_variants else None, report),
        [report / "report.md"],
        {"lines": sorted(lines), "mli": bool(mli_variants)}, depends=[s.name for s in stages if not s.name.startswith("endpoint_")]))
    return stages


def saved(result, out: Path, tensorboard: bool = False):
    """``result`` written into ``out``, and returned for the stages after it."""
    result.save(out, tensorboard)
    return result


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


def write_report(lines: Mapping[str, PathResult], mli_result: MLIResult | None, out: Path) -> None:
    """report.md (the line table, then the MLI table) and lines.csv, with the figures drawn beside them."""
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    figures = {f"line_{name}.png": result for name, result in lines.items()}
    if lines:
        table = [row for name, result in lines.items() for row in line_rows(name, result.summary, result.rows)]
        parts.append("## Straight lines between endpoints\n\n" + write_table(table, LINE_COLUMNS, out / "lines"))
    if mli_result is not None:
        parts.append("## Linear interpolation from initialization (MLI)\n\n" + write_table(mli_result.table, MLI_COLUMNS, out / "mli"))
        figures["mli.png"] = mli_result
    for name, result in figures.items():
        result.write_figure(out / name)
    write_text(out / "report.md", "\n".join(parts))
