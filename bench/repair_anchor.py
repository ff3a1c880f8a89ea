"""The REPAIR anchor (issue #16): how much of the aligned midpoint's accuracy gap REPAIR closes on deep MLPs.

For each recipe and seed pair (A, B): trains both endpoints through the CLI (``fit_run`` into
``--root/<recipe>/init<k>``: init seed k, the recipe's data order; with ``--vary-order`` data-order seed k
too, in ``init<k>_order<k>``; a finished run is reused), aligns B to A
(``lp.align``, activation matching on all training data), and reads test accuracy at t = 0.5 of the
line A → B and of A → aligned B with no fix-up (``bn_batches=0``), RESET (BatchNorm statistics
recomputed, the default) and REPAIR (``repair=True``); with ``--curve`` also of a quadratic Bezier
curve (configs/digits/curve.yaml, the recipe's data) trained between A and aligned B, at t = 0.5
and its mean over t. Gap closed = (REPAIR - RESET) / (endpoints' mean - RESET). Target: REPAIR closes
at least ``--target`` of the aligned line's gap on the deepest plain MLPs (REPAIR's 10 x 128, on the
digits and on MNIST-1D; mean over pairs; the REPAIR notebook closes 84%). Any endpoint recipe can be
given (``--recipes tokens/gpt``: the small GPT of configs/tokens/gpt.yaml). The tables go
to ``--root/repair_anchor.md``.

    python bench/repair_anchor.py [--recipes digits/mlp_deep_repair mnist1d/mlp_deep_repair digits/mlp_deep_bn]
        [--pairs 1,2 3,4 5,6 7,8 9,10] [--vary-order] [--curve] [--curve-epochs 10] [--root runs/bench_repair_anchor]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import torch
import yaml

import landscape_pl as lp
from landscape_pl.atomic import write_text
from landscape_pl.data.saved import resolve_data
from landscape_pl.fitting import fit_run
from landscape_pl.recipes import find_config

PLAIN = ("digits/mlp_deep_repair", "mnist1d/mlp_deep_repair")  # the deepest plain MLPs: the target holds there
FIXUPS = {"none": {"bn_batches": 0}, "RESET": {}, "REPAIR": {"repair": True}}
QUIET = ("--trainer.enable_progress_bar=false",)


def endpoint(recipe: str, seed: int, root: Path, vary_order: bool) -> Path:
    """The recipe trained with init seed ``seed`` (and with ``vary_order`` data-order seed ``seed``, else the
    recipe's) under ``root/<recipe>/init<seed>[_order<seed>]``; a finished run is reused."""
    order = [f"--data.init_args.data_seed={seed}"] if vary_order else []
    return fit_run(find_config(f"{recipe}.yaml"), root / recipe / (f"init{seed}" + (f"_order{seed}" if vary_order else "")),
                   f"--model.init_args.init_seed={seed}", *order, *QUIET)


def at(result: lp.api.PathResult, t: float) -> float:
    return next(r.accuracy for r in result.rows if r.split == "test" and abs(r.key - t) < 1e-9)


def curve(recipe: str, a: Path, aligned: Path, out: Path, epochs: int) -> Path:
    """A quadratic Bezier curve A → aligned B (configs/digits/curve.yaml on the recipe's data section)."""
    data = yaml.safe_load(find_config(f"{recipe}.yaml").read_text())["data"]
    return fit_run(find_config("digits/curve.yaml"), out, f"--model.init_args.start={a}", f"--model.init_args.end={aligned}",
                   f"--data={json.dumps(data)}", f"--trainer.max_epochs={epochs}", *QUIET)


def gap(row: dict, mean: float) -> float | None:
    """(REPAIR - RESET) / (endpoints' mean - RESET); None where RESET already reaches the mean (no gap)."""
    return (row["REPAIR"] - row["RESET"]) / (mean - row["RESET"]) if mean > row["RESET"] else None


def percent(value: float | None) -> str:
    return "no gap" if value is None else f"{100 * value:.0f}%"


def measure_pair(recipe: str, pair: tuple[int, int], args) -> tuple[str, float | None]:
    """One pair's markdown table and the aligned line's gap closed."""
    a, b = (endpoint(recipe, seed, args.root, args.vary_order) for seed in pair)
    data = resolve_data(None, a)
    aligned = lp.align(str(a), str(b), data, method="activation", fraction=1.0, points=0, accelerator="cpu", progress=False)
    folder = aligned.save(args.root / recipe / "align" / f"pair{pair[0]}_{pair[1]}")
    rows = {}
    for label, end in (("line A → B (unaligned)", str(b)), ("line A → aligned B", aligned.network)):
        walks = {fix: lp.interpolate(str(a), end, data, t=[0.0, 0.5, 1.0], splits=("test",), accelerator="cpu", progress=False,
                                     **kwargs) for fix, kwargs in FIXUPS.items()}
        rows[label + ", t = 0.5"] = {fix: at(line, 0.5) for fix, line in walks.items()}
    ends = at(walks["none"], 0.0), at(walks["none"], 1.0)  # the aligned B is B's function
    if args.curve:
        ckpt = curve(recipe, a, folder / "aligned.ckpt", args.root / recipe / "curve" / f"pair{pair[0]}_{pair[1]}", args.curve_epochs)
        evaluated = {fix: lp.evaluate_curve(str(ckpt), data, points=11, splits=("test",), accelerator="cpu", progress=False, **kwargs)
                     for fix, kwargs in FIXUPS.items()}
        rows["Bezier curve A → aligned B, t = 0.5"] = {fix: at(path, 0.5) for fix, path in evaluated.items()}
        rows["Bezier curve A → aligned B, mean over t"] = {fix: path.summary["test"]["mean_accuracy"] for fix, path in evaluated.items()}
    mean = sum(ends) / 2
    lines = [f"#### {recipe}, seeds {pair[0]} and {pair[1]}" + (" (init and data order)" if args.vary_order else " (init)"), "",
             (f"endpoints (test accuracy): {100 * ends[0]:.2f} / {100 * ends[1]:.2f} (mean {100 * mean:.2f}); "
              f"mean unit correlation before / after alignment {aligned.report['mean_correlation']['before']:.3f} / "
              f"{aligned.report['mean_correlation']['after']:.3f}"), "",
             "| path | none | RESET | REPAIR | gap closed by REPAIR |", "|---|---|---|---|---|"]
    lines += [f"| {label} | {100 * row['none']:.2f} | {100 * row['RESET']:.2f} | {100 * row['REPAIR']:.2f} | {percent(gap(row, mean))} |"
              for label, row in rows.items()]
    return "\n".join(lines) + "\n", gap(rows["line A → aligned B, t = 0.5"], mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=[*PLAIN, "digits/mlp_deep_bn"])
    parser.add_argument("--pairs", nargs="+", default=["1,2", "3,4", "5,6", "7,8", "9,10"], help="seed pairs A,B")
    parser.add_argument("--curve", action="store_true", help="also train and evaluate a Bezier curve A → aligned B")
    parser.add_argument("--curve-epochs", type=int, default=10)
    parser.add_argument("--vary-order", action="store_true", help="data-order seed = init seed (default: the recipe's data order)")
    parser.add_argument("--root", type=Path, default=Path("runs/bench_repair_anchor"))
    parser.add_argument("--target", type=float, default=0.6, help="gap REPAIR must close on the plain MLPs (mean over pairs)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # dead units of deep ReLU nets are warned about per walk; irrelevant to the figures
    pairs = [tuple(int(s) for s in p.split(",")) for p in args.pairs]
    report, verdicts = [], []
    for recipe in args.recipes:
        started = time.perf_counter()
        gaps = []
        for pair in pairs:
            text, closed = measure_pair(recipe, pair, args)
            print(text, flush=True)
            report.append(text)
            gaps += [] if closed is None else [closed]
        if not gaps:
            report.append(f"**{recipe}**: RESET reaches the endpoints' mean at every aligned midpoint: no gap for REPAIR\n")
            print(report[-1], flush=True)
            continue
        mean = sum(gaps) / len(gaps)
        verdict = ""
        if recipe in PLAIN:
            verdict = f" (target >= {100 * args.target:.0f}% on the mean: {'PASS' if mean >= args.target else 'FAIL'})"
            verdicts.append(verdict)
        text = (f"**{recipe}**: REPAIR closes {100 * mean:.0f}% of the aligned midpoint's gap on the mean over {len(gaps)} pairs "
                f"(min {100 * min(gaps):.0f}%, max {100 * max(gaps):.0f}%){verdict}; {time.perf_counter() - started:.0f} s\n")
        print(text, flush=True)
        report.append(text)
    write_text(args.root / "repair_anchor.md", "\n".join(report))
    print(f"wrote {args.root / 'repair_anchor.md'}{''.join(verdicts)}")


if __name__ == "__main__":
    main()
