"""Learned curves against the plain network, side by side in one run.

Training (target <= 1.05): a CurveModule step at its default t_groups (what users get), trained through
``lightning.Trainer.fit`` for --steps steps, over a plain PyTorch loop training the same network with
the same optimizer (Adam, the module's default) on the same batches; other t_groups are extra rows.
Both are timed from the end of the first step (warm-up) to the end of the last, set-up excluded.
Evaluation (target <= 1.03): --points points of the curve through ``evaluate_curve`` (θ(t) written,
BatchNorm recomputed on the training loader, one pass over the test loader) over --points x (θ(t)
written + BatchNorm recompute + evaluation pass) in plain torch.

    python bench/curve.py                                  # TinyTen, batch 128, random 32x32 data, CPU
    python bench/curve.py --model vgg16bn --batch 32 --steps 4 --repeats 3 --points 5
    python bench/curve.py --device cuda                    # the same on one GPU
    python bench/curve.py --accuracy                       # t-group choices: mean accuracy along digits curves
"""

from __future__ import annotations

import argparse
import inspect
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from landscape_pl.api.curves import evaluate_curve
from landscape_pl.io import save_network
from landscape_pl.models import VGG16BN, TinyTen
from landscape_pl.modules import CurveModule

import plain
import timing

MODELS = {"tinyten": TinyTen, "vgg16bn": VGG16BN}
DEFAULT_GROUPS = inspect.signature(CurveModule).parameters["t_groups"].default


def endpoints(model: str, folder: Path) -> list[str]:
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(str(save_network(MODELS[model](), folder / f"{model}_{seed}.ckpt", "classification")))
    return paths


def training(model: str, ends: list[str], args: argparse.Namespace, device: torch.device, root: Path) -> list[timing.Ratio]:
    loader = DataLoader(plain.cifar_like(args.steps * args.batch), batch_size=args.batch)

    def fit(groups: int):
        def run() -> timing.Window:
            clock = timing.StepClock(device)
            trainer = timing.trainer(device, root, [clock], max_steps=args.steps)
            trainer.fit(CurveModule(*ends, t_groups=groups), train_dataloaders=loader)
            return clock.seconds
        return run

    def floor() -> timing.Window:
        network = MODELS[model]().to(device)
        return plain.train_steps(network, torch.optim.Adam(network.parameters()), loader, device)

    names = {groups: f"Trainer.fit, CurveModule t_groups={groups}" + (" (default)" if groups == DEFAULT_GROUPS else "")
             for groups in [DEFAULT_GROUPS, *args.extra_groups]}
    variants = {"plain loop (floor)": floor} | {name: fit(groups) for groups, name in names.items()}
    times = timing.interleave(variants, args.repeats, device)
    print(f"training: {model}, batch {args.batch}, {args.steps} steps a fit (the first is the warm-up)")
    timing.print_times(times, per=args.steps - 1, unit="ms")
    return [(f"curve step, t_groups={groups} / plain step", timing.ratios(times, name, "plain loop (floor)"),
             1.05 if groups == DEFAULT_GROUPS else None) for groups, name in names.items()]


def evaluation(model: str, ends: list[str], args: argparse.Namespace, device: torch.device) -> list[timing.Ratio]:
    train = DataLoader(plain.cifar_like(args.bn_batches * args.batch, seed=1), batch_size=args.batch)
    test = DataLoader(plain.cifar_like(args.eval_batches * args.batch, seed=2), batch_size=args.batch)
    module = CurveModule(*ends)
    accelerator = "cuda" if device.type == "cuda" else "cpu"
    ts = [k / (args.points - 1) for k in range(args.points)]
    network = MODELS[model]().to(device)
    anchors = [plain.parameters(MODELS[model]().to(device)) for _ in range(3)]  # start, control point, end

    def curve() -> None:
        evaluate_curve(module, {"train": train, "test": test}, t=ts, splits=("test",), accelerator=accelerator, progress=False)

    def floor() -> None:
        for t in ts:
            plain.point(network, anchors, [(1 - t) ** 2, 2 * t * (1 - t), t**2], train, test, device)

    times = timing.interleave({"plain points (floor)": floor, "evaluate_curve": curve}, args.repeats, device)
    print(f"evaluation: {args.points} points of a quadratic Bezier curve, BatchNorm pass {args.bn_batches} batches "
          f"+ evaluation pass {args.eval_batches} batches of {args.batch}")
    timing.print_times(times, per=args.points, unit="ms")
    return [("curve evaluation / plain points", timing.ratios(times, "evaluate_curve", "plain points (floor)"), 1.03)]


def accuracy(epochs: int, device: torch.device) -> None:
    """Mean/min test accuracy along TinyNet (BatchNorm) curves on digits for each t-group choice, and fit time."""
    from landscape_pl.cli import main

    root = Path(tempfile.mkdtemp(prefix="bench_curve_"))
    quiet = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
             f"--trainer.accelerator={'gpu' if device.type == 'cuda' else 'cpu'}"]
    ends = []
    for seed in (1, 2):
        main(["fit", "--config", "configs/digits/tinynet.yaml", f"--trainer.default_root_dir={root / f'end{seed}'}",
              f"--model.init_args.init_seed={seed}", f"--data.init_args.data_seed={seed}", *quiet])
        ends.append(next((root / f"end{seed}").glob("lightning_logs/version_0/checkpoints/last.ckpt")))
    for groups in (1, 2, 4, 16, -1):
        folder = root / f"groups{groups}"
        start = time.perf_counter()
        main(["fit", "--config", "configs/digits/tinynet_curve.yaml", f"--model.init_args.start={ends[0]}",
              f"--model.init_args.end={ends[1]}", f"--model.init_args.t_groups={groups}", f"--trainer.max_epochs={epochs}",
              f"--trainer.default_root_dir={folder}", *quiet])
        seconds = time.perf_counter() - start
        ckpt = next(folder.glob("lightning_logs/version_0/checkpoints/last.ckpt"))
        test = evaluate_curve(str(ckpt), points=21, splits=("test",), accelerator="cuda" if device.type == "cuda" else "cpu",
                              progress=False).summary["test"]
        print(f"t_groups={groups:>3}: mean test accuracy {test['mean_accuracy']:.4f}, min {test['min_accuracy']:.4f}, "
              f"mean test loss {test['mean_loss']:.4f}, fit {seconds:.0f} s ({epochs} epochs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    timing.options(parser, repeats=5)
    parser.add_argument("--model", choices=sorted(MODELS), default="tinyten")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8, help="training steps a fit (the first is the warm-up)")
    parser.add_argument("--extra-groups", type=int, nargs="*", default=[1], help="other t_groups shown as extra rows")
    parser.add_argument("--points", type=int, default=21, help="curve points evaluated")
    parser.add_argument("--bn-batches", type=int, default=1, help="training batches of the BatchNorm pass at each t")
    parser.add_argument("--eval-batches", type=int, default=1, help="test batches of the evaluation pass at each t")
    parser.add_argument("--accuracy", action="store_true", help="compare t-group choices on digits curves instead")
    parser.add_argument("--epochs", type=int, default=10, help="curve epochs of --accuracy")
    args = parser.parse_args()
    device = timing.setup(args)
    if args.accuracy:
        return accuracy(args.epochs, device)
    with tempfile.TemporaryDirectory() as folder:
        ends = endpoints(args.model, Path(folder))
        rows = training(args.model, ends, args, device, Path(folder)) + evaluation(args.model, ends, args, device)
    timing.print_ratios(rows)


if __name__ == "__main__":
    main()
