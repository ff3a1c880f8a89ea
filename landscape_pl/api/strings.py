"""Dynamic String Sampling (Freeman & Bruna 2017, algorithm 1 / appendix A) as a library call.

``connect`` joins two networks by a string of trained beads whose interpolated loss stays below L0.
The string lives in ``folder`` (one checkpoint per bead and string.json) and is resumed from there:
a call interrupted at any bead continues where it stopped, and a call into a finished string trains
nothing. The verdict is "connected" (every segment below L0: a certificate) or "not connected within
budget", never "disconnected", which the algorithm cannot certify.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from tqdm.auto import tqdm

from landscape_pl.api.inputs import Network, NetworkLike, as_data, as_network, task_of
from landscape_pl.api.result import Result
from landscape_pl.atomic import save_figure
from landscape_pl.data.loaders import Data
from landscape_pl.errors import LandscapeError
from landscape_pl.evaluation import EvalSettings
from landscape_pl.layout import claim
from landscape_pl.models.base import Spec, build, describe
from landscape_pl.paths import Anchors, Evaluation, Row
from landscape_pl.paths.anchors import float_entries
from landscape_pl.paths.curvature import HessianSettings, described
from landscape_pl.paths.grid import t_grid
from landscape_pl.reporting import write_path_report
from landscape_pl.search import Budget, Job, Segment, check_settings, constrained, greedy, open_string, summarize
from landscape_pl.search.probe import Probe
from landscape_pl.search.report import log_depths, pca_figure, profile_rows, substring
from landscape_pl.search.string import INDEX, BeadString
from landscape_pl.search.training import train_bead

HEADLINE = ("verdict", "reason", "beads", "normalized_length", "segment_max_loss")


@dataclass
class StringResult(Result):
    """A string's outcome: ``rows`` (its loss profile against arc length, ends at 0 and 1), ``summary``
    (verdict, reason, beads, normalized_length, segment_max_loss, bead losses and files, depth, steps),
    ``beads`` (K, P) flattened in string order and the ``segments`` between them.

    Files: summary.json, path.csv, path.png, pca.png (and, with TensorBoard, the string at every depth).
    """

    rows: list[Row]
    summary: dict
    beads: torch.Tensor
    segments: list[Segment]
    job: Job = field(repr=False)  # the TensorBoard snapshots per depth evaluate segments the string has not cached

    @property
    def folder(self) -> Path:
        """Where the string itself is kept (beads/, string.json)."""
        return self.job.string.directory

    @property
    def title(self) -> str:
        return f"string: {self.summary['verdict']} ({self.summary['beads']} beads)"

    def write(self, folder: Path, tensorboard: bool) -> None:
        from landscape_pl.plots import plt

        write_path_report(self.rows, folder, self.summary, title=self.title)
        figure = self.pca_plot()
        save_figure(figure, folder / "pca.png")
        plt.close(figure)
        if tensorboard:
            log_depths(self.job, self.beads, folder / "tensorboard")

    def plot(self):
        from landscape_pl.plots import path_figure

        return path_figure(self.rows, self.title)

    def pca_plot(self):
        """Beads and interpolated points on the beads' top three principal axes, coloured by loss (pca.png)."""
        return pca_figure(self.beads, self.segments, self.beads, self.summary["threshold"], f"{self.summary['beads']} beads")

    def headline(self) -> str:
        """What ``connect`` prints: the verdict's numbers, and where the string is."""
        numbers = json.dumps({k: self.summary[k] for k in HEADLINE}, indent=1)
        return (f"{numbers}\nstring in {self.folder / INDEX}, beads in {self.folder / 'beads'}; "
                "summary.json, path.png, pca.png")


def end_label(network: Network) -> str:
    """How the string's index names an end, so a resumed call is refused other ends: a checkpoint by its
    path, a network given in memory by a digest of its weights."""
    if network.path is not None:
        return network.label
    digest = hashlib.sha256()
    for name, value in network.module.state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"{network.label}: in-memory {type(network.module).__name__} sha256:{digest.hexdigest()[:16]}"


def end_spec(network: Network, spec: Spec | None) -> Spec:
    """The spec beads are saved with (beads are ordinary checkpoints): the checkpoint's, the module's own
    record (landscape_pl.models), else ``spec``, checked to rebuild the module."""
    if network.spec is not None:
        return network.spec
    try:
        found = describe(network.module, spec)
    except ValueError:
        raise LandscapeError(
            f"{network.label} is a {type(network.module).__name__}, which records no spec to rebuild it from, and beads "
            "are saved as checkpoints: pass spec={'class_path': ..., 'init_args': ...} (the class and the arguments that "
            "build it), or use a network of landscape_pl.models"
        ) from None
    try:
        build(found).load_state_dict(network.module.state_dict())
    except (ValueError, TypeError, RuntimeError) as err:
        raise LandscapeError(f"spec {found} does not rebuild {network.label}: {err}") from None
    return found


def check_ends(a: Network, b: Network, spec_a: Spec, spec_b: Spec) -> None:
    """One architecture, two different networks: what a string needs between its ends."""
    if spec_a != spec_b:
        raise LandscapeError(f"{a.label} and {b.label} are different architectures: {spec_a} vs {spec_b}")
    anchors = Anchors([a.module.state_dict(), b.module.state_dict()], [a.label, b.label])
    if torch.equal(anchors.matrix[0], anchors.matrix[1]):
        raise LandscapeError(f"{a.label} and {b.label} are the same network: there is nothing to connect")


def end_loss(network: Network, probe: Probe, threshold: float, train_ends: bool,
             train: Callable[[nn.Module], tuple[int, float]]) -> float:
    """An end's loss, which must be below L0; with ``train_ends`` an end above it is trained first."""
    loss = probe.loss(network.module)
    if loss <= threshold:
        return loss
    if not train_ends:
        raise LandscapeError(
            f"{network.label} has loss {loss:.4g}, above threshold L0={threshold}: both ends must be below L0. "
            "Train them first: pass --train_ends true (train_ends=True in Python; trains each end to alpha * L0), or raise --threshold"
        )
    steps, loss = train(network.module)
    if loss > threshold:
        raise LandscapeError(f"{network.label}: training it for {steps} steps left its loss at {loss:.4g} > L0={threshold}; "
                             "raise --bead_steps or --threshold")
    return loss


def with_bead_curvature(rows: list[Row], job: Job, matrix: torch.Tensor, settings: EvalSettings, evaluation: Evaluation) -> list[Row]:
    """The string's profile with each bead's curvature in its row's extras: every bead is evaluated as any
    point of a path is (BatchNorm recomputed, eval mode, the seeded training subset)."""
    network = copy.deepcopy(job.probe.scratch).to(settings.device)
    names = list(float_entries(job.string.state(job.string.beads[0])))
    beads = evaluation.points(network, names, list(range(len(matrix))), matrix.__getitem__, desc="beads")
    step = len(job.probe.ts) - 1  # bead k closes segment k: the profile's row k * step
    rows = list(rows)
    for k, bead in enumerate(beads):
        rows[k * step] = replace(rows[k * step], extras=bead.extras)
    return rows


def connect(
    start: NetworkLike,
    end: NetworkLike,
    data: Data | None = None,
    *,
    threshold: float,
    folder: str | Path,
    train_ends: bool = False,
    algorithm: Literal["greedy", "constrained"] = "greedy",
    alpha: float = 0.8,
    insert_at: Literal["max", "midpoint"] = "max",
    points: int = 21,
    split: Literal["train", "test"] = "train",
    optimizer: OptimizerCallable = torch.optim.Adam,
    bead_steps: int = 500,
    check_every: int = 10,
    max_beads: int = 30,
    max_depth: int = 8,
    max_steps: int | None = None,
    max_rounds: int = 20,
    zeta: float = 0.0,
    kappa: float = 0.0,
    seed: int = 0,
    accelerator: str = "cpu",
    spec: Spec | None = None,
    progress: bool = True,
    hessian: HessianSettings | dict | None = None,
) -> StringResult:
    """Connect two networks by a string of beads whose interpolated loss stays below ``threshold``.

    ``start``/``end`` are nn.Modules (copied, never changed) or checkpoint paths; ``data`` a
    LandscapeDataModule or DataLoaders (default: the data module saved with the start's run). The
    string is kept in ``folder``; a string already there is resumed, which keeps its settings (only
    budgets may change) and its ends. ``spec`` ({"class_path", "init_args"}) rebuilds a module that is
    not a landscape_pl.models network, as every bead is saved as a checkpoint.

    Settings: L0 ``threshold`` on ``split``; beads are trained to ``alpha`` * L0 with ``optimizer`` for
    at most ``bead_steps`` steps each (per round: ``algorithm="constrained"``, with spring ``zeta`` and
    hyperplane term ``kappa``), their loss checked every ``check_every`` steps; a new bead starts at
    the segment's interpolated maximum or midpoint (``insert_at``), on a grid of ``points`` per
    segment. Budgets: ``max_beads`` between the ends, ``max_depth`` of a bead, ``max_steps`` in all,
    ``max_rounds`` (constrained). Ends above L0 are an error unless ``train_ends``. Bead k trains from
    ``seed`` + k, so a resumed string is the uninterrupted one. ``hessian`` adds each bead's curvature to
    its row of the profile (the points between beads have none).
    """
    budget = Budget(max_beads, max_depth, max_steps, max_rounds)
    check_settings(threshold, alpha, points, budget, bead_steps, check_every)
    folder = Path(folder)
    fixed = json.loads(json.dumps({
        "algorithm": algorithm, "threshold": threshold, "alpha": alpha, "insert_at": insert_at, "points": points, "split": split,
        "bead_steps": bead_steps, "check_every": check_every, "zeta": zeta, "kappa": kappa, "seed": seed,
    }))
    with claim(folder):  # one run at a time trains into a string's folder
        string = open_string(folder, fixed)
        a, b = as_network(start, "start"), as_network(end, "end")
        ends = [end_label(a), end_label(b)]
        if string is not None and ends != string.settings["ends"]:
            raise LandscapeError(f"{folder} holds a string between {string.settings['ends']}, not {ends}; pick another folder (--out)")
        datamodule = as_data(data, b, a)  # the start's saved run before the end's, as the command always read it
        curvature = EvalSettings((split,), None, accelerator, False, hessian=hessian)
        at_beads = curvature.evaluation(datamodule, task_of(datamodule, a, b)) if hessian is not None else None  # refused before training
        ts = t_grid(0.0, 1.0, points)
        if string is None:
            for network in (a, b):
                network.module.cpu()  # where checkpoints load: the probe and the bead trainer start from the CPU
            task, bead_spec = task_of(datamodule, a, b), end_spec(a, spec)
            check_ends(a, b, bead_spec, end_spec(b, spec))
            probe = Probe(datamodule, split, build(bead_spec), ts)
            losses = [end_loss(network, probe, threshold, train_ends, lambda module, i=i: train_bead(
                module, datamodule, task, optimizer, probe.loss, alpha * threshold, bead_steps, check_every,
                seed + 1_000_000 + i, folder / "training", accelerator)) for i, network in enumerate((a, b))]
            string = BeadString.create(folder, fixed | {"ends": ends}, (a.module, b.module), losses, bead_spec, task)
        else:
            probe = Probe(datamodule, split, build(string.spec), ts)
        with tqdm(total=max_beads, initial=string.interior, desc="beads", disable=not progress, leave=False) as bar:
            job = Job(string, probe, datamodule, optimizer, budget, threshold, alpha, insert_at, bead_steps, check_every, seed,
                      accelerator, on_bead=lambda bead: bar.update(1))
            reason = greedy(job) if algorithm == "greedy" else constrained(job, zeta, kappa)
        matrix, segments = substring(job, string.beads)
        rows, summary = profile_rows(matrix, segments, split), summarize(job, reason, matrix, segments)
        if at_beads is not None:
            rows = with_bead_curvature(rows, job, matrix, curvature, at_beads)
            summary |= described(curvature.hessian)
        return StringResult(rows, summary, matrix, segments, job)
