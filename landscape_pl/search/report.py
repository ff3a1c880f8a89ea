"""What a finished (or abandoned) string reports: its summary, the loss profile, the PCA view, TensorBoard.

These compute and draw; ``api.strings.StringResult`` writes them (summary.json, path.csv, path.png,
pca.png). The profile of the whole string is drawn against arc length (ends at 0 and 1) with the
project's path report; the PCA figure is appendix C's Figure 7: beads and interpolated points
projected on the top three principal axes of the beads, coloured by loss. TensorBoard gets both once per depth d, for the
string made of the beads of depth <= d (snapshots of the search as it deepened).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import torch

from landscape_pl.analysis.strings import arc_positions, normalized_length, principal_axes, project, segment_maxima
from landscape_pl.paths import Anchors, Row
from landscape_pl.plots import plt  # the project's backend choice: files from scripts, inline figures in notebooks
from landscape_pl.reporting import log_path, path_summary
from landscape_pl.search.job import Job
from landscape_pl.search.string import Bead, Segment

CONNECTED, NOT_CONNECTED = "connected", "not connected within budget"


def substring(job: Job, beads: list[Bead]) -> tuple[torch.Tensor, list[Segment]]:
    """Flattened beads (K, P) and their segment profiles (cached, or evaluated and cached)."""
    string = job.string
    states = [string.state(b) for b in beads]
    segments = []
    for index, (left, right) in enumerate(zip(beads[:-1], beads[1:])):
        key = string.key(left, right)
        if key not in string.segments:
            string.segments[key] = job.probe.segment(states[index], states[index + 1])
            string.save()
        segments.append(string.segments[key])
    return Anchors(states, [b.file for b in beads]).matrix, segments


def profile_rows(matrix: torch.Tensor, segments: list[Segment], split: str) -> list[Row]:
    """The string's loss against arc-length fraction; each bead appears once."""
    positions = arc_positions(matrix, segments[0].ts)
    rows = []
    for index, (where, segment) in enumerate(zip(positions, segments)):
        pairs = list(zip(where, segment.losses))[(1 if index else 0):]
        rows += [Row(s, split, loss, None) for s, loss in pairs]
    return rows


def pca_figure(matrix: torch.Tensor, segments: list[Segment], reference: torch.Tensor, threshold: float, title: str) -> plt.Figure:
    """Beads (large) and interpolated points (small) on the top-3 principal axes of ``reference``, coloured by loss."""
    mean, axes = principal_axes(reference, 3)
    ts = torch.tensor(segments[0].ts, dtype=torch.float64)
    points = torch.cat([(1 - ts)[:, None] * matrix[i].double() + ts[:, None] * matrix[i + 1].double() for i in range(len(segments))])
    losses = [loss for segment in segments for loss in segment.losses]
    bead_losses = [segments[0].losses[0]] + [segment.losses[-1] for segment in segments]
    path, beads = project(points, mean, axes).numpy(), project(matrix, mean, axes).numpy()
    figure = plt.figure(figsize=(6, 5))
    ax = figure.add_subplot(projection="3d")
    norm = matplotlib.colors.LogNorm(vmin=max(min(losses), 1e-12), vmax=max(max(losses), threshold * 1.01))
    ax.plot(*path.T, color="grey", linewidth=0.6)
    ax.scatter(*path.T, c=losses, cmap="viridis", norm=norm, s=6)
    dots = ax.scatter(*beads.T, c=bead_losses, cmap="viridis", norm=norm, s=40, edgecolors="black")
    figure.colorbar(dots, ax=ax, shrink=0.7, label=f"loss (L0 = {threshold:g})")
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_zlabel("PC3")
    ax.set_title(title)
    return figure


def summarize(job: Job, reason: str | None, matrix: torch.Tensor, segments: list[Segment]) -> dict:
    """summary.json of the whole string (``matrix`` and ``segments`` from ``substring``): the verdict and its numbers."""
    string = job.string
    maxima = segment_maxima([s.losses for s in segments])
    connected = reason is None and max(maxima) <= job.threshold
    return {
        "verdict": CONNECTED if connected else NOT_CONNECTED,
        "reason": None if connected else (reason or "a segment is above L0"),
        "threshold": job.threshold,
        "split": job.probe.split,
        "beads": string.interior,
        "normalized_length": normalized_length(matrix),
        "segment_max_loss": maxima,
        "bead_losses": [b.loss for b in string.beads],
        "bead_files": [str(f) for f in string.files()],
        "depth": max(b.depth for b in string.beads),
        "training_steps": string.progress["steps"],
    }


def log_depths(job: Job, reference: torch.Tensor, folder: Path) -> None:
    """TensorBoard, step = depth d: the profile, bead count, length and PCA view of the beads of depth <= d."""
    from torch.utils.tensorboard import SummaryWriter

    string = job.string
    with SummaryWriter(str(folder)) as writer:
        for depth in range(max(b.depth for b in string.beads) + 1):
            beads = [b for b in string.beads if b.depth <= depth]
            matrix, segments = substring(job, beads)
            rows = profile_rows(matrix, segments, job.probe.split)
            log_path(writer, rows, path_summary(rows), "string", step=depth, profile=False)
            writer.add_scalar("string/beads", len(beads) - 2, depth)
            writer.add_scalar("string/normalized_length", normalized_length(matrix), depth)
            writer.add_scalar("string/max_segment_loss", max(segment_maxima([s.losses for s in segments])), depth)
            writer.add_figure("string/pca", pca_figure(matrix, segments, reference, job.threshold, f"depth {depth}"), depth, close=True)
