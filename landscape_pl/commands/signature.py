"""``signature``: how well a midpoint's units correspond to each endpoint's (appendix F, Figure 14).

For the linear midpoint ½(θ_start + θ_end) always, and for ``--midpoint`` (any checkpoint of the
same architecture, e.g. a curve's midpoint exported with ``curve-point --t 0.5``) when given: per
layer, the mean cross-correlation of corresponding units between the midpoint and each endpoint,
as is and with the midpoint aligned to that endpoint (the upper bound).
"""

from __future__ import annotations

from pathlib import Path

from landscape_pl.commands.align import load_pair
from landscape_pl.data.base import LandscapeDataModule
from landscape_pl.io import load_network, write_json
from landscape_pl.paths import has_batchnorm
from landscape_pl.symmetry import check_pair, correlation_signature, linear_midpoint


def signature(
    start: str,
    end: str,
    midpoint: str | None = None,
    out: str = "runs/signature",
    data: LandscapeDataModule | None = None,
    fraction: float = 0.2,
    seed: int = 0,
    accelerator: str = "auto",
    tensorboard: bool = True,
    progress: bool = True,
) -> dict:
    """Write signature.json and signature.png: midpoint-to-endpoint correlation signatures.

    Args:
        start: first endpoint checkpoint.
        end: second endpoint checkpoint.
        midpoint: a checkpoint between them (e.g. a curve's exported midpoint); the linear midpoint is always included.
        out: output folder.
        data: data module; default: the one in ``end``'s run config.yaml.
        fraction: share of the training split the activations are computed on.
        seed: which random subset of the training split.
        accelerator: cpu, cuda or auto.
        tensorboard: also log the figure to ``out/tensorboard``.
        progress: show progress bars.
    """
    pair = load_pair(start, end, data, fraction, seed, accelerator)
    a, spec, datamodule, batches, where = pair.a, pair.spec, pair.datamodule, pair.batches, pair.where
    endpoints = {"start": a.network, "end": pair.b.network}
    bn_data = datamodule.eval_dataloader("train") if has_batchnorm(a.network) else None
    midpoints = {"linear midpoint": linear_midpoint(endpoints["start"], endpoints["end"], bn_data)}
    if midpoint is not None:
        given = load_network(midpoint)
        check_pair(a.network, given.network, (start, midpoint))
        midpoints["midpoint"] = given.network.to(where)
    result = {name: correlation_signature(net, endpoints, spec, batches, progress) for name, net in midpoints.items()}
    report = {"start": start, "end": end, "midpoint": midpoint, "signature": result}
    write_json(report, Path(out) / "signature.json")
    write_figure(result, Path(out), tensorboard)
    print(f"wrote {Path(out) / 'signature.json'} and signature.png")
    return report


def write_figure(result: dict, out: Path, tensorboard: bool) -> None:
    """One panel per endpoint; one line per midpoint as is, one per midpoint aligned to that endpoint."""
    import matplotlib.pyplot as plt

    from landscape_pl.symmetry.figures import signature_figure

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), squeeze=False)
    for ax, endpoint in zip(axes[0], ("start", "end")):
        curves = {}
        for name, sides in result.items():
            curves[name] = sides[endpoint]["as_is"]
            curves[f"{name}, aligned to {endpoint}"] = sides[endpoint]["aligned"]
        signature_figure(curves, f"midpoint vs {endpoint} endpoint", ax)
    fig.savefig(out / "signature.png", dpi=120)
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(out / "tensorboard")) as writer:
            writer.add_figure("signature", fig, 0, close=False)
    plt.close(fig)
