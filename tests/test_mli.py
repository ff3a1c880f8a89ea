"""The MLI report: init -> final in three variants, verdict, plateau and last-layer bias spread."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from landscape_pl.analysis.profile import plateau_length
from landscape_pl.cli import main
from landscape_pl.data import DigitsDataModule
from landscape_pl.io import load_network, read_path_csv
from landscape_pl.paths import evaluate
from landscape_pl.tasks import get_task


def mixed_loss(weights_from, biases_from) -> float:
    """Train loss of the network with the weights of one checkpoint and the biases of another."""
    network = load_network(weights_from).network
    biases = load_network(biases_from).network.state_dict()
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if name.endswith("bias"):
                parameter.copy_(biases[name])
    return evaluate(network, DigitsDataModule().eval_dataloader("train"), get_task("classification"))[0]


def test_mli_report_holds_what_does_not_move_and_tabulates_plateau_and_bias_spread(digits_endpoints, tmp_path):
    e, out = digits_endpoints, tmp_path / "mli"
    main(["mli", "--runs", json.dumps([str(e.run_a)]), "--points=5", "--splits=[train]", "--plateau_tolerance=0.5",
          f"--out={out}", "--progress=false", "--tensorboard=false"])
    with (out / "mli.csv").open() as handle:
        table = list(csv.DictReader(handle))
    run = e.run_a.parent.parent.name  # <tmp>/digits_mlp_seed1x/lightning_logs/version_0: named by its folder
    assert [(r["run"], r["variant"], r["split"]) for r in table] == [(run, v, "train") for v in ("all", "weights", "biases")]
    folders = {r["variant"]: out / r["run"].replace("/", "_") / r["variant"] for r in table}
    weights, biases, everything = (read_path_csv(folders[v] / "path.csv") for v in ("weights", "biases", "all"))
    # weights only: at t = 0 the initial weights with the final biases (held), at t = 1 the final network
    assert weights[0].loss == pytest.approx(mixed_loss(e.a_init, e.a), rel=1e-6)
    assert biases[0].loss == pytest.approx(mixed_loss(e.a, e.a_init), rel=1e-6)
    assert everything[0].loss == pytest.approx(mixed_loss(e.a_init, e.a_init), rel=1e-6)
    assert weights[-1].loss == pytest.approx(everything[-1].loss, rel=1e-6) == biases[-1].loss
    final_bias = load_network(e.a).network.layers[-1].bias.detach().double().numpy()
    for row, profile in zip(table, (everything, weights, biases)):
        assert float(row["last_bias_spread"]) == pytest.approx(final_bias.max() - final_bias.min(), rel=1e-9)
        assert float(row["last_bias_std"]) == pytest.approx(final_bias.std(), rel=1e-9)
        ts, losses = np.array([r.key for r in profile]), np.array([r.loss for r in profile])
        assert float(row["plateau_length"]) == plateau_length(ts, losses, 0.5)
        rises = np.diff(losses) > 0
        assert row["monotonic"] == str(not rises.any())
    markdown = (out / "mli.md").read_text().splitlines()
    assert markdown[0].startswith("| run | variant | split | monotonic") and len(markdown) == 5
    assert (out / "mli.png").stat().st_size > 0
