"""Side-by-side measurement shared by the benchmarks.

The machine is shared, so only figures taken in one run are comparable: every variant runs in every
repeat, the order reversing each repeat (AB, BA, AB, ...), and a benchmark reports the median and the
range (min-max) of the per-repeat ratios to its floor, next to its target (the most we accept) and a
PASS/FAIL word. Peak memory is measured in a fresh process per call, so one call's peak cannot hide
another's. ``--clock cpu`` times this process's CPU time instead of wall time, for CPU runs while other
processes share the cores.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch

Variant = Callable[[], object]
Ratio = tuple[str, Sequence[float], "float | None"]  # (name, per-repeat values, target: the most we accept; None: no target)
_clock: Callable[[], float] = time.perf_counter  # --clock cpu: time.process_time
CPU = torch.device("cpu")


class Window(float):
    """Seconds a variant timed itself (e.g. a fit's steps without its set-up); a variant returning anything
    else is timed whole."""


def options(parser: argparse.ArgumentParser, repeats: int, device: bool = True) -> None:
    """The options every benchmark shares: --repeats, --threads, --clock and (where it can run on a GPU) --device."""
    parser.add_argument("--repeats", type=int, default=repeats, help=f"timed repeats of every variant, interleaved (default {repeats})")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the steadiest on a shared machine)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall time (default), or this process's CPU time: far steadier while other processes share "
                             "the cores (CPU runs without worker processes)")
    if device:
        parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]: networks and timings on that device")


def setup(args: argparse.Namespace) -> torch.device:
    """Apply --threads and --clock, check --device and print where the run happens; returns the device."""
    global _clock
    torch.set_num_threads(args.threads)
    device = torch.device(getattr(args, "device", "cpu"))
    if args.clock == "cpu" and device.type != "cpu":
        raise SystemExit("--clock cpu measures this process's CPU time: use it with --device cpu")
    _clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {device}: no CUDA device is available here")
        if device.index is not None:
            torch.cuda.set_device(device)
        where = f"GPU {torch.cuda.get_device_name(device)}"
    elif device.type == "cpu":
        where = f"CPU, {torch.get_num_threads()} torch threads"
    else:
        raise SystemExit(f"--device {device}: use cpu or cuda[:N]")
    print(f"torch {torch.__version__}, {where}, {args.repeats} repeats, {args.clock} clock")
    return device


def now() -> float:
    """Seconds on the clock chosen by --clock (wall by default)."""
    return _clock()


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timing covers the work and not only its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleave(variants: Mapping[str, Variant], repeats: int, device: torch.device = CPU,
               warm_up: bool = True) -> dict[str, list[float]]:
    """Seconds of every variant in every repeat, the order reversed each repeat so that no variant always
    runs first. ``warm_up`` first calls each variant once untimed (allocators, caches, cuDNN's choices)."""
    names = list(variants)
    for name in names if warm_up else ():
        variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            synchronize(device)
            start = now()
            own = variants[name]()
            synchronize(device)
            times[name].append(own if isinstance(own, Window) else now() - start)
    return times


def ratios(times: Mapping[str, Sequence[float]], variant: str, floor: str) -> list[float]:
    """Per-repeat ratios variant / floor (each pair measured in the same repeat)."""
    return [a / b for a, b in zip(times[variant], times[floor])]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print columns aligned: the first to the left, the others to the right."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def print_times(times: Mapping[str, Sequence[float]], per: float = 1.0, unit: str = "s") -> None:
    """Median and range of each variant's times, divided by ``per`` (e.g. steps or points) and shown in ``unit`` (s or ms)."""
    scale = (1000.0 if unit == "ms" else 1.0) / per
    table(["variant", f"median {unit}", "range"],
          [[name, f"{statistics.median(v) * scale:.2f}", f"{min(v) * scale:.2f}-{max(v) * scale:.2f}"] for name, v in times.items()])


def print_ratios(rows: Sequence[Ratio]) -> None:
    """Print each ratio's median, range, target and PASS/FAIL (median <= target)."""
    lines = []
    for name, values, target in rows:
        median = statistics.median(values)
        verdict = "" if target is None else "PASS" if median <= target else "FAIL"
        lines.append([name, f"{median:.3f}", f"{min(values):.3f}-{max(values):.3f}", "" if target is None else f"<= {target:g}", verdict])
    table(["ratio (per repeat)", "median", "range", "target", ""], lines)


@dataclass(frozen=True)
class Memory:
    """Peak memory of one call in a fresh process (bytes): CPU peak RSS, or CUDA peak allocated."""

    peak: int
    before: int  # the same measure just before the call (interpreter, imports, what the process already held)

    @property
    def added(self) -> int:
        return max(0, self.peak - self.before)


def _status(field: str) -> int:
    """A memory figure of this process from /proc/self/status (Linux), in bytes."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def _measured(function: Callable, args: tuple, device: str, threads: int) -> tuple[int, int]:
    """(before, peak) of ``function(*args)``. CPU: the peak RSS (VmHWM) reset to the current RSS first, since
    getrusage's ru_maxrss starts a spawned process at its parent's size and cannot be reset."""
    torch.set_num_threads(threads)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        function(*args)
        torch.cuda.synchronize(device)
        return before, torch.cuda.max_memory_allocated(device)
    Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS
    before = _status("VmRSS")
    function(*args)
    return before, _status("VmHWM")


def peak_memory(function: Callable, *args, device: torch.device = CPU) -> Memory:
    """Peak memory of ``function(*args)`` run alone in a freshly spawned process (``function`` must be a
    module-level function: it is sent by name)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        before, peak = pool.submit(_measured, function, args, str(device), torch.get_num_threads()).result()
    return Memory(peak, before)


def megabytes(count: int) -> str:
    return f"{count / 2**20:,.0f} MB"


class StepClock(L.Callback):
    """Seconds of a fit from the end of its first training step (the warm-up) to the end of its last:
    the window ``plain.train_steps`` times in a plain loop."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.start, self.end = device, None, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        synchronize(self.device)
        self.end = now()
        self.start = self.end if self.start is None else self.start

    @property
    def seconds(self) -> Window:
        return Window(self.end - self.start)


def trainer(device: torch.device, root: str | Path, callbacks: Sequence[L.Callback], **limits) -> L.Trainer:
    """A Trainer as users make one (default logger, automatic optimization), with only the progress bar,
    the model summary and checkpoints off (terminal output, and files written outside the timed steps).
    Lightning's notes (devices found, tips, in-memory loaders without workers) are silenced: they would
    break up the tables."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*(does not have many workers|smaller than the logging interval|LeafSpec|Skipping val loop).*")
    devices = [device.index] if device.type == "cuda" and device.index is not None else 1
    return L.Trainer(accelerator="gpu" if device.type == "cuda" else "cpu", devices=devices, default_root_dir=str(root),
                     callbacks=list(callbacks), enable_progress_bar=False, enable_model_summary=False,
                     enable_checkpointing=False, **limits)
