"""``connect``: Dynamic String Sampling between two networks (Freeman & Bruna 2017, algorithm 1 / appendix A).

The verdict is "connected" (every segment of the string is below L0: a certificate) or "not connected
within budget" — never "disconnected", which the algorithm cannot certify.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from tqdm.auto import tqdm

from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.data.saved import resolve_data
from landscape_pl.errors import LandscapeError
from landscape_pl.fitting import fit_run
from landscape_pl.io import load_network
from landscape_pl.models.base import build
from landscape_pl.paths import Anchors
from landscape_pl.paths.grid import t_grid
from landscape_pl.search import Budget, Job, constrained, greedy, open_string, report
from landscape_pl.search.probe import Probe
from landscape_pl.search.string import BeadString
from landscape_pl.search.training import train_bead


def check_settings(threshold: float, alpha: float, points: int, budgets: dict[str, int | None]) -> None:
    if not threshold > 0:
        raise LandscapeError(f"threshold={threshold}: L0 must be a loss level above 0")
    if not 0 < alpha < 1:
        raise LandscapeError(f"alpha={alpha}: beads are trained to alpha * L0 with 0 < alpha < 1, below L0 with room to spare")
    if points < 3:
        raise LandscapeError(f"points={points}: a segment needs at least 3 grid points to have an interior maximum")
    for name, value in budgets.items():
        if value is not None and value <= 0:
            raise LandscapeError(f"{name}={value}: a budget of {value} leaves nothing to search with; give a positive number")


def resolve_ends(start: str | None, end: str | None, config: str | None, seeds: tuple[int, int], epochs: int | None,
                 out: Path, end_permutation: dict[str, list[int]] | None = None) -> tuple[str, str]:
    """The two end checkpoints: given, trained here from ``config`` (one per seed), or the start with permuted units."""
    if end_permutation is not None and end is not None:
        raise LandscapeError("give either --end or --end_permutation (the end is then the start with its units permuted), not both")
    if start and (end or end_permutation is not None):
        return start, end or permuted_copy(start, end_permutation, out / "ends" / "permuted.ckpt")
    if start or end:
        raise LandscapeError("give both --start and --end (or --end_permutation), or neither: both are then trained from --endpoint_config")
    if config is None:
        raise LandscapeError("give both --start and --end checkpoints, or --endpoint_config (a fit config) to train them from --seeds")
    from landscape_pl.recipes import find_config

    path = find_config(config)
    start = trained_end(path, out / "ends" / f"seed{seeds[0]}", seeds[0], epochs)
    if end_permutation is not None:
        return resolve_ends(start, None, None, seeds, epochs, out, end_permutation)
    return start, trained_end(path, out / "ends" / f"seed{seeds[1]}", seeds[1], epochs)


def trained_end(config: Path, root: Path, seed: int, epochs: int | None) -> str:
    """One end fitted through the CLI from ``seed`` (initialization and data order), or the one already there."""
    overrides = [f"--seed_everything={seed}", f"--model.init_args.init_seed={seed}", f"--data.init_args.data_seed={seed}"]
    return str(fit_run(config, root, *overrides, *([] if epochs is None else [f"--trainer.max_epochs={epochs}"])))


def permuted_copy(start: str, permutation: dict[str, list[int]], path: Path) -> str:
    """The start network with units permuted (appendix D: two hidden neurons swapped): the same function."""
    from landscape_pl.io import save_network
    from landscape_pl.symmetry import from_lists, permute_network, spec_of

    loaded = load_network(start)
    network = permute_network(loaded.network, spec_of(loaded.network), from_lists(permutation))
    return str(save_network(network, path, loaded.task, loaded.spec))


def load_ends(start: str, end: str):
    a, b = load_network(start), load_network(end)
    if a.spec != b.spec:
        raise LandscapeError(f"{start} and {end} are different architectures: {a.spec} vs {b.spec}")
    anchors = Anchors([a.network.state_dict(), b.network.state_dict()], [start, end])
    if torch.equal(anchors.matrix[0], anchors.matrix[1]):
        raise LandscapeError(f"{start} and {end} are the same network: there is nothing to connect")
    return a, b


def end_loss(path: str, network, probe: Probe, threshold: float, train_ends: bool, train) -> float:
    """An end's loss, which must be below L0; with ``train_ends`` an end above it is trained first (``train(network)``)."""
    loss = probe.loss(network)
    if loss <= threshold:
        return loss
    if not train_ends:
        raise LandscapeError(
            f"{path} has loss {loss:.4g}, above threshold L0={threshold}: both ends must be below L0. "
            "Train them first: pass --train_ends true (trains each end to alpha * L0), or raise --threshold"
        )
    steps, loss = train(network)
    if loss > threshold:
        raise LandscapeError(f"{path}: training it for {steps} steps left its loss at {loss:.4g} > L0={threshold}; raise --bead_steps or --threshold")
    return loss


def connect(
    threshold: float,
    start: str | None = None,
    end: str | None = None,
    out: str = "runs/connect",
    data: LandscapeDataModule | None = None,
    endpoint_config: str | None = None,
    seeds: tuple[int, int] = (1, 2),
    epochs: int | None = None,
    end_permutation: dict[str, list[int]] | None = None,
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
    tensorboard: bool = True,
    progress: bool = True,
) -> dict:
    """Connect two networks by a string of beads whose interpolated loss stays below ``threshold``.

    Args:
        threshold: L0, the loss level the whole string must stay below (on ``split``).
        start: checkpoint of one end (any landscape_pl checkpoint: endpoint, bead, curve point).
        end: checkpoint of the other end.
        out: folder of the string (beads/, string.json) and the report; an existing string there is resumed.
        data: data module; default: the one in the end run's saved config.yaml.
        endpoint_config: endpoint (fit) config to train both ends from ``seeds`` when no start/end is given.
        seeds: initialization and data-order seeds of the two ends trained from ``endpoint_config``.
        epochs: override the config's max_epochs for the ends.
        end_permutation: instead of ``end``, the start with its units permuted, e.g. ``{"layers.1": [1, 0, 2]}``.
        train_ends: train ends that are above L0 down to alpha * L0 first (otherwise that is an error).
        algorithm: "greedy" (algorithm 1, depth first) or "constrained" (appendix A, breadth first).
        alpha: beads are trained until their loss is below alpha * L0.
        insert_at: a new bead starts at the segment's interpolated maximum ("max") or halfway ("midpoint").
        points: t grid points per segment, ends included.
        split: data split on which losses are measured (bead stopping and segment maxima).
        optimizer: bead optimizer, e.g. ``{class_path: torch.optim.Adam, init_args: {lr: 0.01}}``.
        bead_steps: most training steps per bead (greedy) or per round (constrained).
        check_every: steps between two checks of a bead's loss against alpha * L0.
        max_beads: budget: most beads between the ends.
        max_depth: budget: deepest recursion level of a bead (ends are depth 0).
        max_steps: budget: total training steps over all beads (None: no limit).
        max_rounds: budget of the constrained variant: rounds of training all beads.
        zeta: spring term of the constrained variant.
        kappa: hyperplane term of the constrained variant.
        seed: base seed; bead k trains from seed + k.
        accelerator: cpu, cuda or auto (for tiny nets the CPU is fastest).
        tensorboard: log the string's profile and PCA view per depth (``out/tensorboard``).
        progress: show a progress bar over beads.
    """
    check_settings(threshold, alpha, points, {"max_beads": max_beads, "max_depth": max_depth, "max_steps": max_steps,
                                              "max_rounds": max_rounds, "bead_steps": bead_steps, "check_every": check_every})
    folder = Path(out)
    fixed = json.loads(json.dumps({
        "algorithm": algorithm, "threshold": threshold, "alpha": alpha, "insert_at": insert_at, "points": points, "split": split,
        "bead_steps": bead_steps, "check_every": check_every, "zeta": zeta, "kappa": kappa, "seed": seed,
    }))
    string = open_string(folder, fixed)
    if string is None:
        start, end = resolve_ends(start, end, endpoint_config, seeds, epochs, folder, end_permutation)
    elif start is not None and end is not None and [start, end] != string.settings["ends"]:
        raise LandscapeError(f"{folder} holds a string between {string.settings['ends']}, not {[start, end]}; pick another --out")
    else:
        start, end = string.settings["ends"]
    datamodule = resolve_data(data, start)
    ts = t_grid(0.0, 1.0, points)
    if string is None:
        a, b = load_ends(start, end)
        probe = Probe(datamodule, split, build(a.spec), ts)
        ends = [(start, a.network), (end, b.network)]
        losses = [end_loss(path, network, probe, threshold, train_ends, lambda net, i=i: train_bead(
            net, datamodule, a.task, optimizer, probe.loss, alpha * threshold, bead_steps, check_every,
            seed + 1_000_000 + i, folder / "training", accelerator)) for i, (path, network) in enumerate(ends)]
        string = BeadString.create(folder, fixed | {"ends": [start, end]}, [a.network, b.network], losses, a.spec, a.task)
    else:
        probe = Probe(datamodule, split, build(string.spec), ts)
    bar = tqdm(total=max_beads, initial=string.interior, desc="beads", disable=not progress, leave=False)
    job = Job(string, probe, datamodule, optimizer, Budget(max_beads, max_depth, max_steps, max_rounds), threshold, alpha,
              insert_at, bead_steps, check_every, seed, accelerator, on_bead=lambda bead: bar.update(1))
    reason = greedy(job) if algorithm == "greedy" else constrained(job, zeta, kappa)
    bar.close()
    summary = report(job, reason, folder, tensorboard)
    print(json.dumps({k: summary[k] for k in ("verdict", "reason", "beads", "normalized_length", "segment_max_loss")}, indent=1))
    print(f"string in {folder / 'string.json'}, beads in {folder / 'beads'}; summary.json, path.png, pca.png")
    return summary
