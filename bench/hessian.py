"""Hessian cost on TinyTen (batch 128, eval mode): one Hessian-vector product against one gradient of the
same batch and network, side by side (a product inside an eigenvalue or trace call, which shares the
gradient's graph; the same through PyTorch's own double backward of convolutions and BatchNorm, which the
library replaces; a product from scratch; torch.func's forward-over-reverse); memory over 100 products and 100 eigenvalue calls (the growth
PyHessian users report); the top eigenvalue at one point in 20 iterations, next to PyHessian's when a
Python with pyhessian installed is given (``--pyhessian /tmp/pyh-venv/bin/python``).

    python bench/hessian.py --repeats 5 [--pyhessian /tmp/pyh-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from landscape_pl.analysis.hessian import Objective, hvp, products, top_eigenvalues
from landscape_pl.models import TinyTen

from plain import cifar_like
from timing import _status, interleave, megabytes, now, options, print_ratios, print_times, ratios, setup

ROOT = Path(__file__).resolve().parents[1]
BATCH = 128
TARGET = 2.2  # the issue's: a product costs at most 2.2 gradients (about 2 is the floor)
FLAT = 1.10  # RSS after 100 iterations over RSS after the first 10


def problem(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    network = TinyTen().eval()
    x, y = cifar_like(BATCH, seed).tensors
    return network, x, y


def summed(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, targets, reduction="sum")


def plain_gradient(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """The floor: one ordinary gradient of the batch's mean loss."""
    return torch.autograd.grad(F.cross_entropy(network(x), y), list(network.parameters()))


def pytorch_products(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """Products as the library made them before ``double_backward``: a backward through the gradient's graph
    as PyTorch builds it."""
    params = list(network.parameters())
    grads = torch.autograd.grad(F.cross_entropy(network(x), y), params, create_graph=True)

    def apply(vector: torch.Tensor) -> torch.Tensor:
        pieces = [v.view_as(p) for v, p in zip(vector.split([p.numel() for p in params]), params)]
        return torch.cat([t.reshape(-1) for t in torch.autograd.grad(grads, params, pieces, retain_graph=True)])

    return apply


def func_hvp(network: nn.Module, x: torch.Tensor, y: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """The other way to a product: torch.func forward-over-reverse, jvp of grad."""
    params = {name: p.detach() for name, p in network.named_parameters()}
    buffers = dict(network.named_buffers())

    def loss(p):
        return F.cross_entropy(torch.func.functional_call(network, (p, buffers), (x,)), y)

    tangents = dict(zip(params, (v.view_as(p) for v, p in zip(vector.split([p.numel() for p in params.values()]), params.values()))))
    _, product = torch.func.jvp(torch.func.grad(loss), (params,), (tangents,))
    return torch.cat([t.reshape(-1) for t in product.values()])


def timings(repeats: int) -> None:
    network, x, y = problem()
    objective = Objective(network, [(x, y)], summed)
    vector = torch.randn(objective.size, generator=torch.Generator().manual_seed(1))
    print(f"\nTinyTen, {objective.size:,} parameters, batch {BATCH}, eval mode")
    pytorch_apply = pytorch_products(network, x, y)
    with products(objective) as apply:  # what top_eigenvalues, hutchinson_trace and spectral_density use
        times = interleave({
            "gradient (plain torch)": lambda: plain_gradient(network, x, y),
            "HVP in a call (library products)": lambda: apply(vector),
            "HVP in a call, PyTorch's double backward": lambda: pytorch_apply(vector),
            "HVP from scratch (library hvp)": lambda: hvp(objective, vector),
            "HVP, torch.func jvp(grad)": lambda: func_hvp(network, x, y, vector),
        }, repeats)
        found = apply(vector)
        agreement = [float((found - other).norm() / found.norm()) for other in (pytorch_apply(vector), func_hvp(network, x, y, vector))]
    print_times(times, unit="ms")
    print("  the library's products agree with PyTorch's double backward to {:.1e} and with torch.func to {:.1e} (relative)".format(*agreement))
    floor = "gradient (plain torch)"
    print_ratios([
        ("HVP in a call / gradient", ratios(times, "HVP in a call (library products)", floor), TARGET),
        ("HVP PyTorch's double backward / gradient", ratios(times, "HVP in a call, PyTorch's double backward", floor), None),
        ("HVP from scratch / gradient", ratios(times, "HVP from scratch (library hvp)", floor), None),
        ("HVP torch.func / gradient", ratios(times, "HVP, torch.func jvp(grad)", floor), None),
    ])


def memory(iterations: int = 100) -> None:
    """RSS and Python allocations over ``iterations`` products, then over ``iterations`` 2-step eigenvalue calls."""
    network, x, y = problem()
    objective = Objective(network, [(x, y)], summed)
    vector = torch.randn(objective.size, generator=torch.Generator().manual_seed(1))
    print(f"\nmemory over {iterations} iterations (RSS; Python allocations by tracemalloc)")
    rows = []
    for name, step in (("hvp", lambda: hvp(objective, vector)),
                       ("top_eigenvalues(k=1, 2 steps)", lambda: top_eigenvalues(objective, 1, 2, 1e-12))):
        tracemalloc.start()
        samples = []
        for i in range(iterations):
            step()
            if i + 1 in (10, iterations):
                samples.append((_status("VmRSS"), tracemalloc.get_traced_memory()[0]))
        tracemalloc.stop()
        (rss10, py10), (rss100, py100) = samples
        verdict = "PASS" if rss100 <= FLAT * rss10 else "FAIL"
        rows.append(f"  {name}: RSS {megabytes(rss10)} after 10, {megabytes(rss100)} after {iterations} "
                    f"({rss100 / rss10:.3f}x, target <= {FLAT}) {verdict}; Python heap {py10 / 1024:.0f} KB -> {py100 / 1024:.0f} KB")
    print("\n".join(rows))


def top_eigenvalue(repeats: int, pyhessian: str | None, clock: str) -> None:
    """Each implementation in a fresh process of its own (no allocator history from the parts before)."""
    print(f"\ntop eigenvalue, 20 iterations, {repeats} repeats, each implementation in a fresh process")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{Path(__file__).parent}"}
    runs = [("library (Lanczos)", sys.executable, "library")] + ([("PyHessian (power iteration)", pyhessian, "pyhessian")] if pyhessian else [])
    for name, python, kind in runs:
        done = subprocess.run([python, __file__, "--eigenvalue-worker", kind, "--repeats", str(repeats), "--clock", clock], env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode:
            print(f"  {name}: failed ({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode})")
            continue
        found = json.loads(done.stdout.strip().splitlines()[-1])
        seconds = found["seconds"]
        print(f"  {name + ':':<29} {found['value']:.6g} in {statistics.median(seconds):.2f} s (median; {min(seconds):.2f}-{max(seconds):.2f})")
        if found.get("reference") is not None:
            print(f"  {'converged (Lanczos, 1e-7):':<29} {found['reference']:.6g}")
        if found.get("rss"):
            rss5, rss20 = found["rss"]
            print(f"  PyHessian, one hessian object per point (2 iterations each): RSS {megabytes(rss5)} after 5 points, "
                  f"{megabytes(rss20)} after 20 ({rss20 / rss5:.3f}x)")


def eigenvalue_worker(kind: str, repeats: int) -> None:
    """The top eigenvalue of the same network and batch in 20 iterations (tolerance 0: no early stop), ``repeats`` times;
    PyHessian's run also measures RSS over 20 points (one ``hessian`` object each)."""
    network, x, y = problem()
    if kind == "library":
        objective = Objective(network, [(x, y)], summed)

        def once() -> float:
            return top_eigenvalues(objective, 1, 20, 0.0, torch.Generator().manual_seed(0)).values[0]
    else:
        from pyhessian import hessian

        def once(iterations: int = 20) -> float:
            torch.manual_seed(0)
            return hessian(network, nn.CrossEntropyLoss(), data=(x, y), cuda=False).eigenvalues(maxIter=iterations, tol=0.0, top_n=1)[0][0]
    seconds, value = [], None
    for _ in range(repeats):
        start = now()
        value = once()
        seconds.append(now() - start)
    reference = top_eigenvalues(objective, 1, 80, 1e-7).values[0] if kind == "library" else None  # converged: the yardstick
    rss = []
    for point in range(20 if kind == "pyhessian" else 0):
        once(2)
        if point + 1 in (5, 20):
            rss.append(_status("VmRSS"))
    print(json.dumps({"value": value, "seconds": seconds, "rss": rss, "reference": reference}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options(parser, repeats=5, device=False)
    parser.add_argument("--pyhessian", help="a Python interpreter with pyhessian installed (its own venv)")
    parser.add_argument("--eigenvalue-worker", choices=["library", "pyhessian"], help=argparse.SUPPRESS)
    parser.add_argument("--parts", nargs="+", choices=["products", "memory", "eigenvalue"], default=["products", "memory", "eigenvalue"],
                        help="which measurements to run (default all)")
    args = parser.parse_args()
    setup(args)  # workers too: the same clock and threads
    if args.eigenvalue_worker:
        return eigenvalue_worker(args.eigenvalue_worker, args.repeats)
    if "products" in args.parts:
        timings(args.repeats)
    if "memory" in args.parts:
        memory()
    if "eigenvalue" in args.parts:
        top_eigenvalue(args.repeats, args.pyhessian, args.clock)


if __name__ == "__main__":
    sys.exit(main())
