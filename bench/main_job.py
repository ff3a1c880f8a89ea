"""The main job's wall time and peak RSS before and after a change, side by side in one run.

Runs ``python -m landscape_pl study --config configs/studies/alignment_digits.yaml --out <fresh folder>``
in a checkout of each version (a temporary ``git worktree`` under /tmp for a git ref, removed at the end;
the working tree itself for ``--after`` by default), each with PYTHONPATH on its own checkout so it runs
its own code, and a fresh --out each run so nothing is resumed. Runs are interleaved (before, after /
after, before / ...). Target: after / before <= 1.0 (the main job must not grow). About 2 minutes a
run on 2 CPU cores, so the default 3 repeats take about 12 minutes.

    python bench/main_job.py [--before 7f35f18] [--after REF] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/studies/alignment_digits.yaml"


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout.strip()


def run_study(checkout: Path, scratch: Path, label: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes: the job and the children it waited for) of one main job.

    Linux starts a child's peak RSS at its parent's RSS, so this process imports no torch before the runs."""
    out = Path(tempfile.mkdtemp(prefix=f"{label}_", dir=scratch))
    env = os.environ | {"PYTHONPATH": str(checkout)}
    log = out.with_suffix(".log")
    with log.open("w") as handle:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "landscape_pl", "study", "--config", CONFIG, "--out", str(out / "study")],
                                   cwd=checkout, env=env, stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{label} failed ({process.returncode}); its output: {log}\n" + log.read_text()[-3000:])
    return seconds, usage.ru_maxrss * 1024  # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="7f35f18", help="git ref of the version before (default 7f35f18)")
    parser.add_argument("--after", default=None, help="git ref of the version after (default: the working tree)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="main_job_"))
    refs = {"before": args.before, "after": args.after}
    checkouts = {}
    try:
        for label, ref in refs.items():
            if ref is None:
                checkouts[label] = REPO
                continue
            checkouts[label] = scratch / f"{label}_checkout"
            git("worktree", "add", "--detach", str(checkouts[label]), ref)
        names = {label: "working tree" if ref is None else f"{ref} ({git('rev-parse', '--short', ref)})" for label, ref in refs.items()}
        print(f"main job: {CONFIG}; before = {names['before']}, after = {names['after']}; {args.repeats} repeats interleaved")
        seconds: dict[str, list[float]] = {"before": [], "after": []}
        peaks: dict[str, list[int]] = {"before": [], "after": []}
        for repeat in range(args.repeats):
            for label in ("before", "after") if repeat % 2 == 0 else ("after", "before"):
                wall, peak = run_study(checkouts[label], scratch, f"{label}{repeat}")
                seconds[label].append(wall)
                peaks[label].append(peak)
                print(f"  repeat {repeat + 1}, {label}: {wall:.1f} s, peak RSS {peak / 2**20:,.0f} MB", flush=True)
        from timing import print_ratios  # only now: it imports torch (see run_study)

        print_ratios([("wall time, after / before", [a / b for a, b in zip(seconds["after"], seconds["before"])], 1.0),
                      ("peak RSS, after / before", [a / b for a, b in zip(peaks["after"], peaks["before"])], None)])
        print(f"median wall: before {statistics.median(seconds['before']):.1f} s, after {statistics.median(seconds['after']):.1f} s")
    finally:
        for checkout in checkouts.values():
            if checkout != REPO:
                git("worktree", "remove", "--force", str(checkout))
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
