"""The Hessian's eigenvalue density at one network: stochastic Lanczos quadrature on a seeded training
subset, at BatchNorm statistics recomputed for that network and in eval mode, as every path point is
measured (``paths.curvature``), so a spectrum sits beside a path's ``hessian_eig_*`` columns."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from landscape_pl.analysis.hessian import Objective, Spectrum, check_differentiable, spectral_density
from landscape_pl.api.inputs import NetworkLike, as_data, as_network, task_of
from landscape_pl.api.result import Result
from landscape_pl.atomic import replacing
from landscape_pl.data.loaders import Data
from landscape_pl.data.subsets import training_subset
from landscape_pl.errors import LandscapeError
from landscape_pl.evaluation import EvalSettings
from landscape_pl.io import write_json
from landscape_pl.labels import short


@dataclass
class SpectrumResult(Result):
    """The density on its grid, the quadrature's nodes and weights, and the summary (settings, extreme
    nodes: the Ritz values bracketing the spectrum).

    Files: spectrum.csv (eigenvalue, density), spectrum.json (summary, nodes, weights), spectrum.png.
    """

    spectrum: Spectrum
    summary: dict
    title: str = ""

    @property
    def rows(self) -> list[dict]:
        return [{"eigenvalue": x, "density": d} for x, d in zip(self.spectrum.grid, self.spectrum.density)]

    @classmethod
    def load(cls, folder: str | Path) -> "SpectrumResult":
        """The result a finished run left in ``folder`` (spectrum.json)."""
        saved = json.loads((Path(folder) / "spectrum.json").read_text())
        return cls(Spectrum(**saved["spectrum"]), saved["summary"], saved.get("title", ""))

    def write(self, folder: Path, tensorboard: bool) -> None:
        with replacing(folder / "spectrum.csv", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["eigenvalue", "density"])
            writer.writerows([repr(x), repr(d)] for x, d in zip(self.spectrum.grid, self.spectrum.density))
        write_json({"summary": self.summary, "title": self.title, "spectrum": asdict(self.spectrum)}, folder / "spectrum.json")
        self.write_figure(folder / "spectrum.png", "hessian/spectrum" if tensorboard else None)

    def plot(self):
        """Density (log scale: the bulk near 0 and the outliers both show) with every node marked below it."""
        from landscape_pl.plots import plt

        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        grid, density = self.spectrum.grid, self.spectrum.density
        floor = max(max(density) * 1e-8, 1e-300)
        ax.semilogy(grid, [max(d, floor) for d in density], color="C0")
        nodes = [n for row in self.spectrum.nodes for n in row]
        ax.plot(nodes, [floor * 2] * len(nodes), "|", color="C3", markersize=12, label="Lanczos nodes (Ritz values)")
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density")
        ax.set_title(self.title, fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return fig


def hessian_spectrum(
    network: NetworkLike,
    data: Data | None = None,
    vectors: int = 1,
    steps: int = 50,
    subset: int = 256,
    seed: int = 0,
    sigma: float = 0.01,
    points: int = 1000,
    bn_batches: int | None = None,
    accelerator: str = "auto",
) -> SpectrumResult:
    """The Hessian's eigenvalue density at ``network`` (an nn.Module or checkpoint) by stochastic Lanczos
    quadrature: ``vectors`` Rademacher probes of ``steps`` Lanczos steps each, on ``subset`` seeded
    training examples, BatchNorm statistics first recomputed on ``bn_batches`` training batches (None: a
    full pass; 0: off), then eval mode. Each node is broadened by a Gaussian of ``sigma`` x the spread of
    all nodes, on ``points`` values; the density integrates to 1 on its grid. A point of a curve is
    ``lp.curve_point(curve, t)``.
    """
    given = as_network(network, "network")
    datamodule = as_data(data, given)
    task = task_of(datamodule, given)
    settings = EvalSettings((), bn_batches, accelerator, False)
    batches = training_subset(datamodule, subset, seed, "subset")
    module = given.module.to(settings.device)
    evaluation = settings.evaluation(datamodule, task, splits=())
    evaluation.at(module, None)  # the point's fix-ups: BatchNorm recomputed
    module.eval()
    objective = Objective(module, [(x.to(settings.device), y.to(settings.device)) for x, y in batches], evaluation.task.summed_loss)
    check_differentiable(objective)
    if steps > objective.size:
        raise LandscapeError(f"steps={steps}: the network has {objective.size} parameters, so at most {objective.size} Lanczos steps")
    spectrum = spectral_density(objective, vectors, steps, torch.Generator().manual_seed(seed), sigma, points)
    nodes = [n for row in spectrum.nodes for n in row]
    summary = {"network": given.label, "parameters": objective.size, "vectors": vectors, "steps": steps, "subset": subset,
               "seed": seed, "sigma": spectrum.sigma, "min_node": min(nodes), "max_node": max(nodes)}
    return SpectrumResult(spectrum, summary, f"Hessian spectrum of {short(given.label)} ({vectors} x {steps} Lanczos steps, "
                                             f"{subset} examples)")
