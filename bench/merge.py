"""Merging N deep MLPs: the merged network against each endpoint, the unaligned average and the ensemble.

For each recipe, trains ``--networks`` endpoints through the CLI (``fit_run`` into ``--root``: a finished
run is reused, an interrupted one resumed; init and data-order seeds 1..N), then runs ``lp.merge`` for
every method (activation, weight matching), reference (network 0, the running average) and fix-up
(none or, with BatchNorm, RESET; and REPAIR), and prints test accuracy: the endpoints' mean and best,
the uniform average without alignment (with the same fix-up), the aligned average before the fix-up,
the merged network and the ensemble. Target: merged with REPAIR above the plain unaligned average
(no fix-up; RESET with BatchNorm, without which its statistics mean nothing) by at least ``--margin``.
Each merge's files (table, merged.ckpt, merge.png) are written to ``--root/<recipe>/merge/<variant>``,
and the tables to ``--root/merge.md``.

    python bench/merge.py [--recipes digits/mlp_deep_repair mnist1d/mlp_deep_repair digits/mlp_deep mnist1d/mlp_deep
        mnist1d/mlp_deep_bn] [--networks 4] [--epochs N] [--root runs/bench_merge]
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings
from pathlib import Path

import torch

import landscape_pl as lp
from landscape_pl.atomic import write_text
from landscape_pl.fitting import fit_run
from landscape_pl.io import load_network
from landscape_pl.paths import has_batchnorm
from landscape_pl.recipes import find_config

COLUMNS = ["method", "reference", "rounds", "fixup", "endpoints (mean)", "best endpoint", "unaligned average", "aligned average", "merged",
           "ensemble", "merged - unaligned", "merged - plain unaligned"]
DIFFERENCES = ("merged - unaligned", "merged - plain unaligned")


def endpoints(recipe: str, networks: int, epochs: int | None, root: Path) -> list[Path]:
    """``networks`` runs of the recipe, seeds 1..N, trained (or found) under ``root/<recipe>/seed<k>``; ``epochs``
    None keeps the recipe's own (a schedule's length is tied to it)."""
    config = find_config(f"{recipe}.yaml")
    length = [] if epochs is None else [f"--trainer.max_epochs={epochs}"]
    return [fit_run(config, root / recipe / f"seed{seed}", *length, f"--model.init_args.init_seed={seed}",
                    f"--data.init_args.data_seed={seed}", "--trainer.enable_progress_bar=false")
            for seed in range(1, networks + 1)]


def accuracy(result: lp.api.MergeResult, kind: str, split: str) -> float | None:
    found = [r[f"{split}_accuracy"] for r in result.rows if r["kind"] == kind]
    return found[0] if found else None


def cell(column: str, value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:+.3f}" if column in DIFFERENCES else f"{value:.3f}"
    return str(value)


def table(recipe: str, rows: list[dict]) -> str:
    lines = [f"### {recipe}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(column, row.get(column)) for column in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["digits/mlp_deep_repair", "mnist1d/mlp_deep_repair", "digits/mlp_deep", "mnist1d/mlp_deep",
                                                        "mnist1d/mlp_deep_bn"])
    parser.add_argument("--networks", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=None, help="default: each recipe's own")
    parser.add_argument("--root", type=Path, default=Path("runs/bench_merge"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--margin", type=float, default=0.2, help="target: merged + REPAIR above the plain unaligned average by this")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # dead units of deep ReLU nets are reported per merge; irrelevant to the figures
    report, verdicts = [], []
    for recipe in args.recipes:
        started = time.perf_counter()
        ckpts = endpoints(recipe, args.networks, args.epochs, args.root)
        trained = time.perf_counter() - started
        rows, plain = [], None
        fixups = ("reset", "repair") if has_batchnorm(load_network(ckpts[0]).network) else ("none", "repair")
        for method, reference, fixup in itertools.product(("activation", "weight"), (0, "average"), fixups):
            result = lp.merge(ckpts, method=method, reference=reference, fixup=fixup, splits=[args.split], accelerator="cpu",
                              progress=False)
            result.save(args.root / recipe / "merge" / f"{method}_{reference}_{fixup}")
            if fixup == fixups[0] and plain is None:
                plain = accuracy(result, "unaligned", args.split)
            ends = [r[f"{args.split}_accuracy"] for r in result.rows if r["kind"] == "endpoint"]
            merged, unaligned = accuracy(result, "merged", args.split), accuracy(result, "unaligned", args.split)
            rounds = f"{result.summary['rounds']}" + ("" if result.summary["converged"] else " (no end)")
            rows.append({"method": method, "reference": reference, "rounds": rounds, "fixup": fixup, "endpoints (mean)": sum(ends) / len(ends),
                         "best endpoint": max(ends), "unaligned average": unaligned, "aligned average": accuracy(result, "aligned", args.split),
                         "merged": merged, "ensemble": accuracy(result, "ensemble", args.split), "merged - unaligned": merged - unaligned,
                         "merged - plain unaligned": merged - plain})
        best = max((r for r in rows if r["fixup"] == "repair"), key=lambda r: r["merged"])
        verdict = "PASS" if best["merged - plain unaligned"] >= args.margin else "FAIL"
        verdicts.append(verdict)
        text = table(recipe, rows) + (
            f"\n{args.networks} networks, {args.split} accuracy; plain unaligned average ({fixups[0]}): {plain:.3f}; best REPAIR merge "
            f"({best['method']}, reference {best['reference']}): {best['merged']:.3f}, {best['merged - plain unaligned']:+.3f} "
            f"(target >= +{args.margin}: {verdict}); training {trained:.0f} s\n")
        print(text, flush=True)
        report.append(text)
    write_text(args.root / "merge.md", "\n".join(report))
    print(f"wrote {args.root / 'merge.md'}; {' '.join(verdicts)}")


if __name__ == "__main__":
    main()
