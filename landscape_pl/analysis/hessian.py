"""Curvature of the loss at one point: Hessian-vector products, top eigenvalues, trace, spectral density.

Pure functions of an ``Objective`` (a network, fixed batches, a summed loss). Every random vector comes
from a ``torch.Generator`` the caller seeds, and nothing outlives a call: the gradient graph one call's
products share is freed when the call returns (PyHessian keeps it on its object, the memory growth its
users report), and the network's ``.grad`` fields are never written.

Hessian-vector products are double backward: each batch's gradient is built once per call with its
graph (convolutions and eval-mode BatchNorm given cheaper second derivatives, ``double_backward``), and
every product is one backward through it. ``bench/hessian.py``, TinyTen batch 128 on the CPU: a product
costs 1.8 gradients (2.4-2.6 with PyTorch's own double backward; 3.8 for forward-over-reverse
with ``torch.autograd.forward_ad`` dual parameters and 3.3-4.1 for torch.func's ``jvp(grad(L))``, whose
convolution tangents run ``convolution_backward`` about 5 times per layer).
Eigenvalues are Lanczos with full reorthogonalization (exact in exact arithmetic once the Krylov
space is invariant, so a tiny network checks against ``eigvalsh`` of its explicit Hessian); the
trace is Hutchinson's estimator with Rademacher vectors; the density is stochastic Lanczos
quadrature (Ghorbani et al. 2019, as PyHessian) with Gaussian broadening.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from landscape_pl.analysis.double_backward import cheap_double_backward
from landscape_pl.errors import LandscapeError

SummedLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ZERO_DERIVATIVE = {"RoundBackward", "SignBackward", "SgnBackward", "FloorBackward", "CeilBackward", "TruncBackward"}
BREAKDOWN = 1e-10  # a Lanczos residual this small (relative to the first α) means the Krylov space is invariant


@dataclass(frozen=True)
class Objective:
    """L(θ) = Σ_batches summed_loss(network(x), y) / N over fixed ``batches``, as a function of the
    network's parameters that require grad (the network is evaluated in whatever mode it is in)."""

    network: nn.Module
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]]
    summed_loss: SummedLoss

    @property
    def parameters(self) -> list[nn.Parameter]:
        found = [p for p in self.network.parameters() if p.requires_grad]
        if not found:
            raise LandscapeError(f"{type(self.network).__name__} has no parameter that requires grad: there is no Hessian to take")
        return found

    @property
    def count(self) -> int:
        return sum(len(y) for _, y in self.batches)

    @property
    def size(self) -> int:
        return sum(p.numel() for p in self.parameters)

    def losses(self) -> Iterator[torch.Tensor]:
        """Each batch's share of L, with a graph (whatever the caller's grad mode)."""
        count = self.count
        with torch.enable_grad():
            for x, y in self.batches:
                yield self.summed_loss(self.network(x), y) / count


def flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def gradient(objective: Objective) -> torch.Tensor:
    """∇L as one flat vector."""
    params = objective.parameters
    total = torch.zeros(objective.size, dtype=params[0].dtype, device=params[0].device)
    for loss in objective.losses():
        total += flat(torch.autograd.grad(loss, params))
    return total


Product = Callable[[torch.Tensor], torch.Tensor]


@contextmanager
def products(objective: Objective) -> Iterator[Product]:
    """H v for any number of flat v at one point: each batch's gradient is built once with its graph and
    every product is one backward through it; the graphs are freed on leaving the block (their memory is
    that of one double-backward graph per batch of the objective)."""
    params = objective.parameters
    sizes = [p.numel() for p in params]
    with cheap_double_backward():
        graphs = [torch.autograd.grad(loss, params, create_graph=True) for loss in objective.losses()]

    def apply(vector: torch.Tensor) -> torch.Tensor:
        pieces = [v.view_as(p) for v, p in zip(vector.split(sizes), params)]
        total = torch.zeros_like(vector)
        for grads in graphs:
            live = [(g, v) for g, v in zip(grads, pieces) if g.requires_grad]  # a gradient constant in θ adds nothing
            if not live:
                continue
            found = torch.autograd.grad([g for g, _ in live], params, [v for _, v in live], retain_graph=True, allow_unused=True)
            total += flat([torch.zeros_like(p) if f is None else f for f, p in zip(found, params)])
        return total

    try:
        with torch.enable_grad():
            yield apply
    finally:
        graphs.clear()


def hvp(objective: Objective, vector: torch.Tensor) -> torch.Tensor:
    """One H v as a flat vector (double backward); for many, ``products`` shares the gradient's graph."""
    with products(objective) as apply:
        return apply(vector)


def rademacher(size: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """±1 with equal probability, drawn on the CPU from ``generator`` (the same draws on every device)."""
    return (torch.randint(0, 2, (size,), generator=generator) * 2 - 1).to(like)


def lanczos(apply: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor, steps: int) -> Iterator[tuple[list[float], list[float], float]]:
    """Lanczos with full reorthogonalization from ``start``: after each step, the tridiagonal T's diagonal
    α, its off-diagonal β and the norm of the next residual (0 when the Krylov space became invariant).

    Full reorthogonalization (twice, against every basis vector) keeps the Ritz values free of the
    spurious copies plain Lanczos produces in floating point, at ``steps`` x P memory.
    """
    basis = start.new_zeros((steps, start.numel()))
    basis[0] = start / start.norm()
    alphas: list[float] = []
    betas: list[float] = []
    for j in range(steps):
        w = apply(basis[j])
        alpha = torch.dot(w, basis[j])
        known = basis[: j + 1]
        for _ in range(2):
            w = w - known.T @ (known @ w)
        alphas.append(float(alpha))
        beta = float(w.norm())
        invariant = beta <= BREAKDOWN * max(abs(alphas[0]), 1e-30) or j + 1 == start.numel()
        yield alphas, betas, 0.0 if invariant else beta
        if invariant or j + 1 == steps:
            return
        betas.append(beta)
        basis[j + 1] = w / beta


def ritz(alphas: Sequence[float], betas: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (ascending) and eigenvectors of the symmetric tridiagonal matrix, in float64."""
    t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if betas:
        off = torch.tensor(betas, dtype=torch.float64)
        t += torch.diag(off, 1) + torch.diag(off, -1)
    return torch.linalg.eigh(t)


@dataclass(frozen=True)
class Eigenvalues:
    """The top-k eigenvalues (largest first), the Lanczos steps taken and whether all k met the tolerance."""

    values: list[float]
    steps: int
    converged: bool


def top_eigenvalues(objective: Objective, k: int = 1, iterations: int = 20, tolerance: float = 1e-3,
                    generator: torch.Generator | None = None) -> Eigenvalues:
    """The k largest (algebraic) eigenvalues of the Hessian by Lanczos, stopped when every Ritz residual
    bound |β_m s_mi| is within ``tolerance`` of its value, or after ``iterations`` steps."""
    size = objective.size
    if not 1 <= k <= size:
        raise LandscapeError(f"top_k={k}: the network has {size} parameters; ask for 1 to {size} eigenvalues")
    if iterations < k:
        raise LandscapeError(f"iterations={iterations} must be at least top_k={k}")
    generator = generator or torch.Generator().manual_seed(0)
    like = objective.parameters[0]
    start = torch.randn(size, generator=generator, dtype=torch.float64).to(like)
    values, steps, converged = [], 0, False
    with products(objective) as apply:
        for alphas, betas, residual in lanczos(apply, start, min(iterations, size)):
            steps = len(alphas)
            if steps < k:
                continue
            theta, vectors = ritz(alphas, betas)
            bounds = residual * vectors[-1, -k:].abs()
            values = theta[-k:].flip(0).tolist()
            converged = bool((bounds <= tolerance * theta[-k:].abs().clamp_min(1e-30)).all())
            if converged:
                break
    return Eigenvalues(values, steps, converged)


def hutchinson_trace(objective: Objective, samples: int, generator: torch.Generator | None = None) -> tuple[float, float]:
    """tr H ≈ mean of vᵀHv over ``samples`` Rademacher v, and its standard error (nan for one sample)."""
    if samples < 1:
        raise LandscapeError(f"trace_samples={samples}: Hutchinson's estimate needs at least 1 sample")
    generator = generator or torch.Generator().manual_seed(0)
    like = objective.parameters[0]
    estimates = []
    with products(objective) as apply:
        for _ in range(samples):
            v = rademacher(objective.size, generator, like)
            estimates.append(float(torch.dot(v, apply(v))))
    values = torch.tensor(estimates, dtype=torch.float64)
    error = float(values.std() / math.sqrt(samples)) if samples > 1 else math.nan
    return float(values.mean()), error


@dataclass(frozen=True)
class Spectrum:
    """Stochastic Lanczos quadrature: per probe vector, the Ritz ``nodes`` and their ``weights`` (each
    vector's weights sum to 1), and the density on ``grid`` (Gaussian broadening of width ``sigma``)."""

    nodes: list[list[float]]
    weights: list[list[float]]
    grid: list[float]
    density: list[float]
    sigma: float


def spectral_density(objective: Objective, vectors: int = 1, steps: int = 50, generator: torch.Generator | None = None,
                     sigma: float = 0.01, points: int = 1000) -> Spectrum:
    """The Hessian's eigenvalue density by stochastic Lanczos quadrature.

    For each of ``vectors`` Rademacher probes, ``steps`` Lanczos steps give Ritz values θ_j and weights
    (first component of their eigenvectors)²; the density is their average, each node a Gaussian of
    width ``sigma`` x (spread of all nodes), on ``points`` values from 5 widths below the smallest node
    to 5 above the largest, so it integrates to 1 on its grid.
    """
    if vectors < 1 or steps < 1:
        raise LandscapeError(f"vectors={vectors}, steps={steps}: the spectral density needs at least one of each")
    if sigma <= 0:
        raise LandscapeError(f"sigma={sigma} must be positive (the broadening, as a share of the spectrum's spread)")
    generator = generator or torch.Generator().manual_seed(0)
    like = objective.parameters[0]
    nodes, weights = [], []
    with products(objective) as apply:
        for _ in range(vectors):
            start = rademacher(objective.size, generator, like)
            for alphas, betas, _ in lanczos(apply, start, min(steps, objective.size)):
                pass
            theta, s = ritz(alphas, betas)
            nodes.append(theta.tolist())
            weights.append((s[0] ** 2).tolist())
    every = torch.tensor([n for row in nodes for n in row], dtype=torch.float64)
    low, high = float(every.min()), float(every.max())
    width = sigma * ((high - low) or max(abs(high), 1.0))
    grid = torch.linspace(low - 5 * width, high + 5 * width, points, dtype=torch.float64)
    density = torch.zeros_like(grid)
    for theta, w in zip(nodes, weights):
        centred = (grid[:, None] - torch.tensor(theta, dtype=torch.float64)) / width
        density += (torch.exp(-0.5 * centred**2) * torch.tensor(w, dtype=torch.float64)).sum(1)
    density /= vectors * width * math.sqrt(2 * math.pi)
    return Spectrum(nodes, weights, grid.tolist(), density.tolist(), width)


def check_differentiable(objective: Objective) -> None:
    """Refuse a network whose loss is not twice differentiable in its parameters, naming the module at fault.

    One forward pass on the first batch with a hook on every module finds the innermost module that
    returns integers, returns a float that does not require grad although its inputs or parameters do
    (torch.no_grad or detach inside forward), or applies an operation whose derivative is zero
    (round, sign, floor, ceil, trunc); a parameter the loss does not reach is named by its module.
    """
    network, x, y = objective.network, *objective.batches[0]
    names = {module: name or type(network).__name__ for name, module in network.named_modules()}
    found: list[str] = []

    def hook(module: nn.Module, inputs: tuple, output) -> None:
        if found:
            return
        tensors_in = [t for t in inputs if isinstance(t, torch.Tensor)]
        outputs = [t for t in (output if isinstance(output, (tuple, list)) else [output]) if isinstance(t, torch.Tensor)]
        upstream = any(t.requires_grad for t in tensors_in) or any(p.requires_grad for p in module.parameters())
        if not upstream:
            return
        where = f"module {names[module]!r} ({type(module).__name__})"
        live = [t for t in outputs if torch.is_floating_point(t) and t.requires_grad]  # indices beside them are fine
        if outputs and not live:
            integer = next((t for t in outputs if not torch.is_floating_point(t)), None)
            found.append(f"{where} returns a {integer.dtype} tensor (argmax, indices, casts to int have no derivative)"
                         if integer is not None else
                         f"{where} returns a tensor that does not require grad (torch.no_grad or detach inside its forward)")
            return
        stop = {t.grad_fn for t in tensors_in if t.grad_fn is not None}
        op = next((op for op in (zero_derivative_op(t.grad_fn, stop) for t in live) if op), None)
        if op:
            found.append(f"{where} applies {op}, whose derivative is zero wherever it exists")

    handles = [module.register_forward_hook(hook) for module in network.modules()]
    try:
        with torch.enable_grad():
            loss = objective.summed_loss(network(x), y)
    finally:
        for handle in handles:
            handle.remove()
    if not found:
        params = {name: p for name, p in network.named_parameters() if p.requires_grad}
        unused = [name for name, g in zip(params, torch.autograd.grad(loss, list(params.values()), allow_unused=True))
                  if g is None] if loss.requires_grad else list(params)
        if unused:
            module = unused[0].rpartition(".")[0] or type(network).__name__
            found.append(f"module {module!r}: the loss does not depend on its parameter {unused[0]!r}")
    if found:
        raise LandscapeError(f"the Hessian needs a loss twice differentiable in the parameters, but {found[0]}; "
                             "make that part differentiable, or leave out the Hessian (hessian=None)")


def zero_derivative_op(node, stop: set) -> str | None:
    """The first zero-derivative operation in the autograd graph from ``node`` back to the ``stop`` nodes."""
    seen, todo = set(), [node]
    while todo:
        current = todo.pop()
        if current is None or current in seen or current in stop:
            continue
        seen.add(current)
        name = re.sub(r"\d+$", "", type(current).__name__)
        if name in ZERO_DERIVATIVE:
            return name.removesuffix("Backward").lower()
        todo.extend(next_node for next_node, _ in current.next_functions)
    return None
