"""Speed of learned curves against the plain network, measured side by side in one run (issue 10).

    python bench/curve.py                        # TinyTen, batch 128, CPU, random 32x32 data
    python bench/curve.py --model vgg16bn --batch 32 --repeats 4 --points 11   # a few minutes on 2 cores
    python bench/curve.py --accuracy             # t-group choices: mean accuracy along digits curves
    python bench/curve.py --device cuda          # the same on one GPU (modules and data on it, timings synchronized)

Ratios (targets): curve step / endpoint step (<= 1.05); per-sample t with the default t-groups /
one t per batch (<= 1.15), plus one t per example; evaluation of N points / N x (BatchNorm pass +
evaluation pass) of the plain network (<= 1.03). Variants run interleaved, each repeat times every
variant once, and the reported ratio is the median of the per-repeat ratios (the machine is shared).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landscape_pl.io import save_network  # noqa: E402
from landscape_pl.models import TinyTen, VGG16BN  # noqa: E402
from landscape_pl.modules import CurveModule, EndpointModule  # noqa: E402
from landscape_pl.paths import Evaluation, evaluate, recompute_batchnorm  # noqa: E402
from landscape_pl.tasks import get_task  # noqa: E402

MODELS = {"tinyten": TinyTen, "vgg16bn": VGG16BN}
warnings.filterwarnings("ignore", message=".*self.trainer.*")  # training_step's self.log outside a Trainer


def endpoints(model: str, folder: Path) -> tuple[str, str]:
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(str(save_network(MODELS[model](), folder / f"{model}_{seed}.ckpt", "classification")))
    return paths[0], paths[1]


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timing covers the work and not only its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_batches(count: int, batch: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.randn(batch, 3, 32, 32).to(device), torch.randint(0, 10, (batch,)).to(device)) for _ in range(count)]


def stepper(module, batches):
    """One optimizer step of ``module`` as Lightning's automatic optimization does it (minus the loop)."""
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=0.01, momentum=0.9)

    def step(i: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        module.training_step(batches[i % len(batches)], i).backward()
        optimizer.step()

    return step


def timed(step, steps: int, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    synchronize(device)
    return time.perf_counter() - start


def median_ratios(variants: dict, pairs: list[tuple[str, str]], steps: int, repeats: int, device: torch.device) -> dict:
    for step in variants.values():  # warm-up (on a GPU also cuDNN's algorithm choice and the caching allocator)
        step(0)
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for repeat in range(repeats):  # interleaved, the order rotated each repeat so no variant always runs first
        for name in names[repeat % len(names):] + names[: repeat % len(names)]:
            times[name].append(timed(variants[name], steps, device))
    for name, values in times.items():
        print(f"  {name:<34} median {statistics.median(values) / steps * 1000:8.1f} ms/step")
    return {f"{a} / {b}": statistics.median(x / y for x, y in zip(times[a], times[b])) for a, b in pairs}


def training(model: str, a: str, b: str, batch: int, steps: int, repeats: int, groups: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    batches = random_batches(2, batch, device)
    endpoint = EndpointModule(MODELS[model](), task="classification").to(device)
    endpoint.network.train()
    curves = {
        "curve, one t per batch": CurveModule(a, b, t_groups=1),
        f"curve, {groups} t-groups (loop)": CurveModule(a, b, t_groups=groups),
        f"curve, {groups} t-groups (vmap)": CurveModule(a, b, t_groups=groups, vmap_groups=True),
    }
    if model == "tinyten":
        curves["curve, one t per example (vmap)"] = CurveModule(a, b, t_groups=-1)
    for module in curves.values():
        module.to(device).ready_network()  # the network copy follows the control points' device
    variants = {"endpoint": stepper(endpoint, batches)} | {name: stepper(m, batches) for name, m in curves.items()}
    names = list(curves)
    pairs = [(names[0], "endpoint"), (names[1], names[0]), (names[2], names[0])] + ([(names[3], names[0])] if len(names) > 3 else [])
    return median_ratios(variants, pairs, steps, repeats, device)


def evaluation(a: str, b: str, batch: int, points: int, bn_batches: int, eval_batches: int, repeats: int,
               device: torch.device) -> dict:
    torch.manual_seed(0)
    train, test = random_batches(bn_batches, batch, device), random_batches(eval_batches, batch, device)
    task = get_task("classification")
    module = CurveModule(a, b).to(device)
    network, path = module.evaluation_path()
    ts = torch.linspace(0, 1, points).tolist()
    run = Evaluation({"test": test}, task, bn_data=train, progress=False)
    plain = MODELS[module.spec["class_path"].rsplit(".", 1)[1].lower()]().to(device)

    def floor(_: int) -> None:
        for _ in ts:
            recompute_batchnorm(plain, train)
            evaluate(plain, test, task)

    variants = {"curve evaluation": lambda _: run.path(network, path, ts), "floor": floor}
    return median_ratios(variants, [("curve evaluation", "floor")], 1, repeats, device)


def accuracy(epochs: int, device: torch.device) -> None:
    """Mean/min test accuracy along TinyNet (BatchNorm) curves on digits for each t-group choice, and step time."""
    from landscape_pl.cli import main
    from landscape_pl.commands.curve import curve

    root = Path(tempfile.mkdtemp(prefix="bench_curve_"))
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    quiet = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", f"--trainer.accelerator={accelerator}"]
    ends = []
    for seed in (1, 2):
        main(["fit", "--config", "configs/digits/tinynet.yaml", f"--trainer.default_root_dir={root / f'end{seed}'}",
              f"--model.init_args.init_seed={seed}", f"--data.init_args.data_seed={seed}", *quiet])
        ends.append(next((root / f"end{seed}").glob("lightning_logs/version_0/checkpoints/last.ckpt")))
    for groups in (1, 4, 16, -1):
        folder = root / f"groups{groups}"
        start = time.perf_counter()
        main(["fit", "--config", "configs/digits/tinynet_curve.yaml", f"--model.init_args.start={ends[0]}",
              f"--model.init_args.end={ends[1]}", f"--model.init_args.t_groups={groups}", f"--trainer.max_epochs={epochs}",
              f"--trainer.default_root_dir={folder}", *quiet])
        seconds = time.perf_counter() - start
        ckpt = next(folder.glob("lightning_logs/version_0/checkpoints/last.ckpt"))
        test = curve(str(ckpt), out=str(folder / "eval"), points=21, accelerator="cuda" if device.type == "cuda" else "cpu",
                     progress=False, tensorboard=False)["test"]
        print(f"t_groups={groups:>3}: mean test accuracy {test['mean_accuracy']:.4f}, min {test['min_accuracy']:.4f}, "
              f"mean test loss {test['mean_loss']:.4f}, fit {seconds:.0f} s ({epochs} epochs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="tinyten")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2, help="training steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--groups", type=int, default=2, help="t-groups of the per-sample variant (CurveModule default: 2)")
    parser.add_argument("--points", type=int, default=61)
    parser.add_argument("--bn-batches", type=int, default=1, help="batches of the BatchNorm pass at each t")
    parser.add_argument("--eval-batches", type=int, default=1, help="batches of the evaluation pass at each t")
    parser.add_argument("--eval-repeats", type=int, default=3, help="timed repeats of the evaluation comparison")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N: modules and data on that device")
    parser.add_argument("--accuracy", action="store_true", help="compare t-group choices on digits curves instead")
    parser.add_argument("--epochs", type=int, default=10, help="curve epochs of --accuracy")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device {args.device}: use cpu or cuda[:N]")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            parser.error(f"--device {args.device}: no CUDA device is available here")
        if device.index is not None:
            torch.cuda.set_device(device)
        where = f"GPU {torch.cuda.get_device_name(device)}"
    elif device.type == "cpu":
        where = f"{torch.get_num_threads()} threads, CPU"
    else:
        parser.error(f"--device {args.device}: use cpu or cuda[:N]")
    if args.accuracy:
        return accuracy(args.epochs, device)
    print(f"{args.model}, batch {args.batch}, {args.steps} steps x {args.repeats} repeats, {where}")
    with tempfile.TemporaryDirectory() as folder:
        a, b = endpoints(args.model, Path(folder))
        ratios = training(args.model, a, b, args.batch, args.steps, args.repeats, args.groups, device)
        print(f"evaluation: {args.points} points, BatchNorm pass {args.bn_batches} batches + evaluation {args.eval_batches} batches of {args.batch}")
        ratios |= evaluation(a, b, args.batch, args.points, args.bn_batches, args.eval_batches, args.eval_repeats, device)
    for name, ratio in ratios.items():
        print(f"{name:<72} {ratio:.3f}")


if __name__ == "__main__":
    main()
