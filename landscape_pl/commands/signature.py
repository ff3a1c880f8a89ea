"""``signature``: how well a midpoint's units correspond to each endpoint's (appendix F, Figure 14).

For the linear midpoint ½(θ_start + θ_end) always, and for ``--midpoint`` (any checkpoint of the
same architecture, e.g. a curve's midpoint exported with ``curve-point --t 0.5``) when given: per
layer, the mean cross-correlation of corresponding units between the midpoint and each endpoint,
as is and with the midpoint aligned to that endpoint (the upper bound).
"""

from __future__ import annotations

from pathlib import Path

from landscape_pl.api import alignment
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.data.saved import resolve_data


def signature(
    start: str,
    end: str,
    midpoint: str | None = None,
    out: str = "runs/signature",
    data: LandscapeDataModule | None = None,
    fraction: float = 0.2,
    seed: int = 0,
    accelerator: str = "auto",
    tensorboard: bool = True,
    progress: bool = True,
) -> dict:
    """Write signature.json and signature.png: midpoint-to-endpoint correlation signatures.

    Args:
        start: first endpoint checkpoint.
        end: second endpoint checkpoint.
        midpoint: a checkpoint between them (e.g. a curve's exported midpoint); the linear midpoint is always included.
        out: output folder.
        data: data module; default: the one in ``end``'s run config.yaml.
        fraction: share of the training split the activations are computed on.
        seed: which random subset of the training split.
        accelerator: cpu, cuda or auto.
        tensorboard: also log the figure to ``out/tensorboard``.
        progress: show progress bars.
    """
    result = alignment.correlation_signatures(start, end, resolve_data(data, end), midpoint, fraction, seed, accelerator, progress)
    result.save(out, tensorboard)
    print(f"wrote {Path(out) / 'signature.json'} and signature.png")
    return result.report
