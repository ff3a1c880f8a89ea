"""``study``: the alignment paper's comparison of curve classes, start to finish, in one resumable command."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from landscape_pl.errors import LandscapeError
from landscape_pl.layout import Study
from landscape_pl.recipes import find_config
from landscape_pl.study.alignment import CLASSES, KNOWN_CLASSES, alignment_stages, plane_stages
from landscape_pl.study.report import write_report
from landscape_pl.study.runner import Outcomes, Stage, run_stages

CurveClass = Literal["unaligned", "aligned", "pam_unaligned", "pam_aligned", "aligned_repair"]


def study(
    out: str = "runs/study",
    endpoint_config: str = "configs/digits/tinynet.yaml",
    curve_config: str = "configs/digits/tinynet_curve.yaml",
    pam_config: str = "configs/digits/tinynet_pam.yaml",
    pairs: list[tuple[int, int]] = [(1, 2), (3, 4)],  # noqa: B006 - jsonargparse needs a literal default
    classes: list[CurveClass] = list(CLASSES),  # noqa: B006
    method: Literal["activation", "weight"] = "activation",
    endpoint_epochs: int | None = None,
    curve_epochs: int | None = None,
    pam_schedule: tuple[int, int, int] | None = None,
    points: int = 21,
    ensemble_t: list[list[float]] = [[0.0, 1.0], [0.0, 0.5, 1.0]],  # noqa: B006
    plane_points: int = 0,
    accelerator: str = "auto",
    overrides: list[str] = [],  # noqa: B006
    endpoint_overrides: list[str] = [],  # noqa: B006
) -> dict:
    """Train endpoint pairs, align them, fit the four curve classes, evaluate, ensemble, and report.

    Every stage writes under ``out`` (TensorBoard runs included: ``tensorboard --logdir out``) and
    is skipped when its outputs exist for the same settings, so an interrupted study resumes and a
    changed config reruns only the stages it affects. The report is ``out/report``: Tables 2, 4
    and 5 of the alignment paper as CSV and markdown, and Figure 2 (accuracy along the curve).

    Args:
        out: the study's folder.
        endpoint_config: config of the endpoint networks (fit).
        curve_config: CurveModule config of the Unaligned and Aligned curves (start/end are set per pair).
        pam_config: PAMModule config of the PAM curves (start/end and init_permutation are set per pair).
        pairs: (seed, seed) of each endpoint pair; a seed sets initialization and data order.
        classes: curve classes to train; ``aligned_repair`` (Aligned + REPAIR: the Aligned curve evaluated with
            REPAIR at every t, and the REPAIRed straight line in the alignment table) needs ``aligned`` too.
        method: alignment method for the Aligned and PAM Aligned classes.
        endpoint_epochs: override the endpoint config's max_epochs.
        curve_epochs: override the curve config's max_epochs.
        pam_schedule: override PAM's (iterations, permutation_epochs, curve_epochs).
        points: t grid of every evaluation (and of the alignment's straight lines).
        ensemble_t: t sets of the ensembles along the Unaligned and Aligned curves (empty: none).
        plane_points: grid points per axis of the first pair's planes (0: none): through θ1, θ2 and the
            aligned θ2 (Figure 3), and through each learned curve of a trained class (Figures 4, 12, 13).
        accelerator: cpu, cuda or auto for the evaluations.
        overrides: command-line options added to every fit (endpoints, curves, PAM), e.g.
            ``--data.init_args.dataset=CIFAR100`` or ``--trainer.devices=4``.
        endpoint_overrides: options added to the endpoint fits only, e.g.
            ``--model.init_args.network.init_args.num_outputs=100``.
    """
    if not pairs:
        raise LandscapeError("pairs is empty: give at least one (seed, seed) pair")
    unknown = [c for c in classes if c not in KNOWN_CLASSES]
    if unknown:
        raise LandscapeError(f"classes: {unknown[0]!r} is not one of {list(KNOWN_CLASSES)}")
    root = Path(out)
    stages, found = alignment_stages(
        root, find_config(endpoint_config), find_config(curve_config), find_config(pam_config), pairs, classes,
        method, endpoint_epochs, curve_epochs, pam_schedule, points, ensemble_t, accelerator, overrides, endpoint_overrides)
    report_dir, outcomes = Study(root).report, Outcomes()
    if plane_points:
        stages += plane_stages(root, tuple(pairs[0]), classes, plane_points, accelerator, found, outcomes)

    def report() -> dict:
        return write_report({key: outcomes[name] for key, name in found.evaluations.items()}, report_dir,
                            {pair: outcomes[name].report for pair, name in found.alignments.items()},
                            {key: outcomes[name] for key, name in found.ensembles.items()}, found.planes)

    stages.append(Stage("report", report, [report_dir / "tables.csv", report_dir / "tables.md", report_dir / "accuracy_along_curve.png"],
                        inputs=list(found.planes.values()),
                        depends=[s.name for s in stages if s.name.startswith(("evaluate_", "align_", "ensembles_", "plane_"))]))
    run_stages(stages, root, outcomes=outcomes)
    print((report_dir / "tables.md").read_text())
    print(f"report in {report_dir}; tensorboard --logdir {root}")
    return {"report": str(report_dir)}
