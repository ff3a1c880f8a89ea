"""``hessian``: the Hessian's eigenvalue density at one network (stochastic Lanczos quadrature on a seeded
training subset, BatchNorm recomputed, eval mode); for curvature along a path, give ``--hessian.*`` to
``interpolate``, ``curve``, ``plane``, ``mli`` or ``connect``."""

from __future__ import annotations

from pathlib import Path

from landscape_pl.api import hessian as spectra
from landscape_pl.data.base import LandscapeDataModule


def hessian(
    ckpt: str,
    out: str = "runs/hessian",
    data: LandscapeDataModule | None = None,
    vectors: int = 1,
    steps: int = 50,
    subset: int = 256,
    seed: int = 0,
    sigma: float = 0.01,
    points: int = 1000,
    bn_batches: int | None = None,
    accelerator: str = "auto",
    tensorboard: bool = False,
) -> dict:
    """Write spectrum.csv (eigenvalue, density), spectrum.json and spectrum.png for the network in ``ckpt``.

    Args:
        ckpt: a network checkpoint (endpoint, curve point, bead, aligned network) or safetensors export.
        out: folder for the files.
        data: data module; default: the one in the run's saved config.yaml.
        vectors: random probe vectors (their densities are averaged).
        steps: Lanczos steps per vector (nodes of the quadrature).
        subset: seeded training examples the loss is taken over.
        seed: seeds the subset and the probe vectors.
        sigma: Gaussian broadening of each node, as a share of the spread of all nodes.
        points: grid points of the density.
        bn_batches: training batches for BatchNorm statistics; None a full pass, 0 off.
        accelerator: cpu, cuda or auto.
        tensorboard: also log the figure (``out/tensorboard``).
    """
    result = spectra.hessian_spectrum(ckpt, data, vectors, steps, subset, seed, sigma, points, bn_batches, accelerator)
    result.save(out, tensorboard)
    print(f"wrote {Path(out) / 'spectrum.csv'}, spectrum.json and spectrum.png")
    return result.summary
