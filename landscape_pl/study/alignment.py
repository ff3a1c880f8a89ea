"""The alignment paper's study as stages: endpoints, alignment, the four curve classes, evaluation,
ensembles, and the report (Tables 2, 4 and 5, Figure 2).

Curve classes (section 4.1): Unaligned (curve between θ1 and θ2), Aligned (between θ1 and the
activation-aligned θ2), PAM Unaligned (PAM from P = I) and PAM Aligned (PAM from the alignment); and,
when asked for, Aligned + REPAIR (``aligned_repair``: the Aligned curve evaluated with REPAIR at every
t, no curve of its own; its alignment stage also walks the REPAIRed straight line).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from landscape_pl.api.alignment import AlignmentResult, align
from landscape_pl.api.curves import EnsembleResult, curve_ensembles, evaluate_curve
from landscape_pl.api.lines import PathResult
from landscape_pl.api.planes import plane
from landscape_pl.errors import LandscapeError
from landscape_pl.fitting import fit_run
from landscape_pl.layout import Study
from landscape_pl.study.endpoints import endpoint_stage, file_digest
from landscape_pl.study.lines import saved
from landscape_pl.study.runner import Outcomes, Stage

CLASSES = ("unaligned", "aligned", "pam_unaligned", "pam_aligned")
REPAIRED = "aligned_repair"  # the Aligned curve, evaluated with REPAIR
KNOWN_CLASSES = (*CLASSES, REPAIRED)


@dataclass
class StudyStages:
    """The stages whose results the report reads: each (class, pair) curve evaluation, each pair's
    alignment, each (class, pair) ensemble table, each plane (name -> its plane.png)."""

    evaluations: dict[tuple[str, int], str] = field(default_factory=dict)
    alignments: dict[int, str] = field(default_factory=dict)
    ensembles: dict[tuple[str, int], str] = field(default_factory=dict)
    planes: dict[str, Path] = field(default_factory=dict)


def alignment_stages(
    root: Path,
    endpoint_config: Path,
    curve_config: Path,
    pam_config: Path,
    pairs: Sequence[tuple[int, int]],
    classes: Sequence[str],
    method: str,
    endpoint_epochs: int | None,
    curve_epochs: int | None,
    pam_schedule: tuple[int, int, int] | None,
    points: int,
    ensemble_t: Sequence[Sequence[float]],
    accelerator: str,
    overrides: Sequence[str] = (),
    endpoint_overrides: Sequence[str] = (),
) -> tuple[list[Stage], StudyStages]:
    """All stages in order, and which of them the report reads."""
    if REPAIRED in classes and "aligned" not in classes:
        raise LandscapeError(f"classes: {REPAIRED!r} evaluates the Aligned curve with REPAIR; add 'aligned' to classes too")
    repair = REPAIRED in classes
    layout = Study(root)
    stages: list[Stage] = []
    endpoint: dict[int, Path] = {}
    epochs = [*overrides, *endpoint_overrides] + ([] if endpoint_epochs is None else [f"--trainer.max_epochs={endpoint_epochs}"])
    for seed in dict.fromkeys(s for pair in pairs for s in pair):
        run = layout.endpoint(seed)
        endpoint[seed] = run.last
        stages.append(endpoint_stage(f"endpoint_seed{seed}", run, endpoint_config, seed, epochs))
    found = StudyStages()
    for i, (seed_a, seed_b) in enumerate(pairs):
        a, b = endpoint[seed_a], endpoint[seed_b]
        ends = [f"endpoint_seed{seed_a}", f"endpoint_seed{seed_b}"]
        align_dir = layout.alignment(i)
        found.alignments[i] = f"align_pair{i}"
        stages.append(Stage(
            f"align_pair{i}",
            lambda a=a, b=b, out=align_dir: saved(align(str(a), str(b), method=method, points=points, accelerator=accelerator,
                                                        progress=False, repair=repair), out, tensorboard=True),
            [align_dir, align_dir / "aligned.ckpt", align_dir / "permutation.json"],
            {"method": method, "points": points, **({"repair": True} if repair else {})},
            inputs=[a, b], depends=ends, load=lambda out=align_dir: AlignmentResult.load(out)))
        for cls in classes:
            if cls == REPAIRED:
                stages.append(repaired_stage(layout, i, points, accelerator, found))
                continue
            run = layout.curve(cls, i)
            end = align_dir / "aligned.ckpt" if cls == "aligned" else b
            fit_args = [*overrides, f"--model.init_args.start={a}", f"--model.init_args.end={end}"]
            if cls.startswith("pam"):
                config = pam_config
                init = "identity" if cls == "pam_unaligned" else str(align_dir / "permutation.json")
                fit_args.append(f"--model.init_args.init_permutation={init}")
                if pam_schedule is not None:
                    iterations, permutation_epochs, curve_epochs_ = pam_schedule
                    fit_args += [f"--model.init_args.iterations={iterations}",
                                  f"--model.init_args.permutation_epochs={permutation_epochs}",
                                  f"--model.init_args.curve_epochs={curve_epochs_}",
                                  f"--trainer.max_epochs={iterations * (permutation_epochs + curve_epochs_)}"]
            else:
                config = curve_config
                fit_args += [] if curve_epochs is None else [f"--trainer.max_epochs={curve_epochs}"]
            ckpt = run.last
            stages.append(Stage(
                f"curve_{cls}_pair{i}", lambda c=config, r=run.root, o=tuple(fit_args): fit_run(c, r, *o),
                [run.root, ckpt], {"config": file_digest(config), "overrides": fit_args},
                inputs=[a, end], depends=[*ends, f"align_pair{i}"], load=lambda ckpt=ckpt: ckpt))
            out = layout.evaluation(cls, i)
            found.evaluations[(cls, i)] = f"evaluate_{cls}_pair{i}"
            stages.append(Stage(
                f"evaluate_{cls}_pair{i}",
                lambda ckpt=ckpt, out=out: saved(evaluate_curve(str(ckpt), points=points, accelerator=accelerator, progress=False),
                                                 out, tensorboard=True),
                [out, out / "summary.json", out / "path.csv"], {"points": points},
                inputs=[ckpt], depends=[f"curve_{cls}_pair{i}"], load=lambda out=out: PathResult.load(out, "curve")))
            if ensemble_t and cls in ("unaligned", "aligned"):
                ens = layout.ensembles(cls, i)
                found.ensembles[(cls, i)] = f"ensembles_{cls}_pair{i}"
                stages.append(Stage(
                    f"ensembles_{cls}_pair{i}",
                    lambda ckpt=ckpt, ens=ens, a=a, b=b: saved(curve_ensembles(
                        str(ckpt), t_sets=[list(map(float, ts)) for ts in ensemble_t], independent=[str(a), str(b)],
                        accelerator=accelerator), ens),
                    [ens, ens / "ensembles.csv"], {"t": [list(ts) for ts in ensemble_t]},
                    inputs=[ckpt], depends=[f"curve_{cls}_pair{i}"], load=lambda ens=ens: EnsembleResult.load(ens)))
    return stages, found


def repaired_stage(layout: Study, pair: int, points: int, accelerator: str, found: StudyStages) -> Stage:
    """Aligned + REPAIR of one pair: the Aligned curve's checkpoint evaluated with REPAIR at every t."""
    ckpt, out = layout.curve("aligned", pair).last, layout.evaluation(REPAIRED, pair)
    found.evaluations[(REPAIRED, pair)] = f"evaluate_{REPAIRED}_pair{pair}"
    return Stage(
        f"evaluate_{REPAIRED}_pair{pair}",
        lambda: saved(evaluate_curve(str(ckpt), points=points, accelerator=accelerator, progress=False, repair=True), out,
                      tensorboard=True),
        [out, out / "summary.json", out / "path.csv"], {"points": points, "repair": True},
        inputs=[ckpt], depends=[f"curve_aligned_pair{pair}"], load=lambda: PathResult.load(out, "curve"))


def plane_stages(root: Path, pair: tuple[int, int], classes: Sequence[str], points: int, accelerator: str,
                 found: StudyStages, outcomes: Outcomes) -> list[Stage]:
    """The first pair's planes on test data: through θ1, θ2 and the aligned θ2 (Figure 3: where the curves
    start), and through each trained curve's θ1, control point and θ2 with the curve drawn (Figures 4, 12, 13)."""
    layout = Study(root)
    align_dir = layout.alignment(0)
    a, b = (layout.endpoint(seed).last for seed in pair)
    options = dict(points=points, splits=["test"], accelerator=accelerator, progress=False)
    folder = layout.plane("endpoints_pair0")
    stages = [Stage(
        "plane_endpoints_pair0",
        lambda: saved(plane(networks=[str(a), str(b), outcomes["align_pair0"].network], labels=["θ1", "θ2", "Pθ2"], **options),
                      folder, tensorboard=True),
        [folder / "plane.csv", folder / "plane.png"], {"points": points},
        inputs=[a, b, align_dir / "aligned.ckpt"], depends=["align_pair0"])]
    found.planes["plane_endpoints_pair0"] = folder / "plane.png"
    for cls in (c for c in classes if c != REPAIRED):  # Aligned + REPAIR has no curve of its own to span a plane
        ckpt, out = layout.curve(cls, 0).last, layout.plane(f"{cls}_pair0")
        stages.append(Stage(
            f"plane_{cls}_pair0", lambda ckpt=ckpt, out=out: saved(plane(curve_ckpt=str(ckpt), **options), out, tensorboard=True),
            [out / "plane.csv", out / "plane.png"], {"points": points}, inputs=[ckpt], depends=[f"curve_{cls}_pair0"]))
        found.planes[f"plane_{cls}_pair0"] = out / "plane.png"
    return stages
