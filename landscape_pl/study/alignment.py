"""The alignment paper's study as stages: endpoints, alignment, the four curve classes, evaluation,
ensembles, and the report (Tables 2, 4 and 5, Figure 2).

Curve classes (section 4.1): Unaligned (curve between θ1 and θ2), Aligned (between θ1 and the
activation-aligned θ2), PAM Unaligned (PAM from P = I) and PAM Aligned (PAM from the alignment).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from landscape_pl.fitting import fit_run
from landscape_pl.study.endpoints import endpoint_stage, file_digest, last_checkpoint
from landscape_pl.study.runner import Stage

CLASSES = ("unaligned", "aligned", "pam_unaligned", "pam_aligned")


@dataclass
class StudyFiles:
    """Where the stages leave what the report reads: each (class, pair) curve evaluation's summary.json,
    each pair's align report.json, each (class, pair) ensembles.csv."""

    evaluations: dict[tuple[str, int], Path] = field(default_factory=dict)
    alignments: dict[int, Path] = field(default_factory=dict)
    ensembles: dict[tuple[str, int], Path] = field(default_factory=dict)


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
) -> tuple[list[Stage], StudyFiles]:
    """All stages in order, and where they write what the report reads."""
    from landscape_pl.commands.align import align
    from landscape_pl.commands.curve import curve, curve_ensembles

    stages: list[Stage] = []
    endpoint: dict[int, Path] = {}
    epochs = [*overrides, *endpoint_overrides] + ([] if endpoint_epochs is None else [f"--trainer.max_epochs={endpoint_epochs}"])
    for seed in dict.fromkeys(s for pair in pairs for s in pair):
        run = root / "endpoints" / f"seed{seed}"
        endpoint[seed] = last_checkpoint(run)
        stages.append(endpoint_stage(f"endpoint_seed{seed}", run, endpoint_config, seed, epochs))
    files = StudyFiles()
    for i, (seed_a, seed_b) in enumerate(pairs):
        a, b = endpoint[seed_a], endpoint[seed_b]
        ends = [f"endpoint_seed{seed_a}", f"endpoint_seed{seed_b}"]
        align_dir = root / "align" / f"pair{i}"
        files.alignments[i] = align_dir / "report.json"
        stages.append(Stage(
            f"align_pair{i}",
            lambda a=a, b=b, out=align_dir: align(str(a), str(b), out=str(out), method=method, points=points,
                                                  accelerator=accelerator, progress=False),
            [align_dir, align_dir / "aligned.ckpt", align_dir / "permutation.json"], {"method": method, "points": points},
            inputs=[a, b], depends=ends))
        for cls in classes:
            run = root / "curves" / f"{cls}_pair{i}"
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
            ckpt = last_checkpoint(run)
            stages.append(Stage(
                f"curve_{cls}_pair{i}", lambda c=config, r=run, o=tuple(fit_args): fit_run(c, r, *o),
                [run, ckpt], {"config": file_digest(config), "overrides": fit_args},
                inputs=[a, end], depends=[*ends, f"align_pair{i}"]))
            out = root / "evaluate" / f"{cls}_pair{i}"
            files.evaluations[(cls, i)] = out / "summary.json"
            stages.append(Stage(
                f"evaluate_{cls}_pair{i}",
                lambda ckpt=ckpt, out=out: curve(str(ckpt), out=str(out), points=points, accelerator=accelerator, progress=False),
                [out, out / "summary.json", out / "path.csv"], {"points": points},
                inputs=[ckpt], depends=[f"curve_{cls}_pair{i}"]))
            if ensemble_t and cls in ("unaligned", "aligned"):
                ens = root / "ensembles" / f"{cls}_pair{i}"
                files.ensembles[(cls, i)] = ens / "ensembles.csv"
                stages.append(Stage(
                    f"ensembles_{cls}_pair{i}",
                    lambda ckpt=ckpt, ens=ens, a=a, b=b: curve_ensembles(
                        str(ckpt), t_sets=[list(map(float, ts)) for ts in ensemble_t], independent=[str(a), str(b)],
                        out=str(ens), accelerator=accelerator),
                    [ens, ens / "ensembles.csv"], {"t": [list(ts) for ts in ensemble_t]},
                    inputs=[ckpt], depends=[f"curve_{cls}_pair{i}"]))
    return stages, files


def plane_stages(root: Path, pair: tuple[int, int], classes: Sequence[str], points: int, accelerator: str) -> list[Stage]:
    """The first pair's planes on test data: through θ1, θ2 and the aligned θ2 (Figure 3: where the curves
    start), and through each trained curve's θ1, control point and θ2 with the curve drawn (Figures 4, 12, 13)."""
    from landscape_pl.commands.plane import plane

    align_dir, planes = root / "align" / "pair0", root / "planes"
    a, b = (last_checkpoint(root / "endpoints" / f"seed{seed}") for seed in pair)
    options = dict(points=points, splits=["test"], accelerator=accelerator, progress=False)
    stages = [Stage(
        "plane_endpoints_pair0",
        lambda: plane(networks=[str(a), str(b), str(align_dir / "aligned.ckpt")], labels=["θ1", "θ2", "Pθ2"],
                      out=str(planes / "endpoints_pair0"), **options),
        [planes / "endpoints_pair0" / "plane.csv", planes / "endpoints_pair0" / "plane.png"], {"points": points},
        inputs=[a, b, align_dir / "aligned.ckpt"], depends=["align_pair0"])]
    for cls in classes:
        ckpt, out = last_checkpoint(root / "curves" / f"{cls}_pair0"), planes / f"{cls}_pair0"
        stages.append(Stage(
            f"plane_{cls}_pair0", lambda ckpt=ckpt, out=out: plane(curve_ckpt=str(ckpt), out=str(out), **options),
            [out / "plane.csv", out / "plane.png"], {"points": points}, inputs=[ckpt], depends=[f"curve_{cls}_pair0"]))
    return stages
