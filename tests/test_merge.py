"""merge: N networks aligned, averaged and fixed up into one ordinary checkpoint, beside the endpoints,
the unaligned average and the ensemble; through the API and the CLI."""

from __future__ import annotations

import csv
import json

import matplotlib.figure
import pytest
import torch
from conftest import CONFIGS, fit
from torch import nn
from torch.utils.data import DataLoader

import landscape_pl as lp
from landscape_pl.api.merge import MergeResult
from landscape_pl.cli import main
from landscape_pl.data import DigitsDataModule, PolynomialDataModule
from landscape_pl.data.subsets import alignment_batches
from landscape_pl.data.tokens import TokensDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network
from landscape_pl.models import GPT, MLP
from landscape_pl.paths.evaluate import evaluate
from landscape_pl.symmetry import cross_correlations, permute_network, random_permutations, spec_of, weight_matched
from landscape_pl.symmetry.many import average, to_each_other, to_reference
from landscape_pl.tasks import get_task

QUIET = ["--accelerator", "cpu", "--progress", "false", "--tensorboard", "false"]


def digits_loaders() -> dict[str, DataLoader]:
    data = DigitsDataModule()
    return {split: DataLoader(data.split(split), batch_size=500) for split in ("train", "test")}


def deep(seed: int) -> nn.Module:
    """An untrained 64-32-32-32-10 tanh MLP (three permutation groups), seeded; tanh: no unit is constant on the
    data, so activations tell every unit apart (a dead ReLU unit correlates with nothing, and matches any dead unit)."""
    torch.manual_seed(seed)
    return MLP(64, [32, 32, 32], 10, activation="tanh")


@pytest.fixture(scope="module")
def third(tmp_path_factory, digits_endpoints):
    """A third digits MLP like the session's two (configs/digits/mlp.yaml, 2 epochs), seed 3."""
    return fit(CONFIGS / "digits" / "mlp.yaml", tmp_path_factory.mktemp("digits_mlp_seed3"), 3) / "checkpoints" / "last.ckpt"


def same_state(one: nn.Module, two: nn.Module) -> bool:
    return all(torch.equal(a, b) for a, b in zip(one.state_dict().values(), two.state_dict().values()))


@pytest.mark.parametrize("method", ["activation", "weight"])
@pytest.mark.parametrize("fixup", ["none", "reset"])
def test_merging_a_network_with_itself_returns_it(digits_endpoints, method, fixup):
    network = load_network(digits_endpoints.a).network
    result = lp.merge([network, network], digits_loaders(), method=method, fixup=fixup, accelerator="cpu", progress=False)
    assert same_state(result.network, network)  # exactly: identity permutations, (x + x) / 2 == x
    assert all(torch.equal(p, torch.arange(len(p))) for perms in result.permutations for p in perms.values())
    rows = {r["kind"]: r for r in result.rows}
    for column in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        assert rows["merged"][column] == rows["unaligned"][column] == rows["endpoint"][column]
        assert rows["ensemble"][column] == pytest.approx(rows["endpoint"][column], abs=1e-6)
    assert result.summary["gain"]["test"]["over_unaligned"] == 0.0


def test_repair_of_a_network_merged_with_itself_changes_it_by_rounding_only(digits_endpoints):
    network = load_network(digits_endpoints.a).network
    result = lp.merge([network, network], digits_loaders(), method="weight", fixup="repair", accelerator="cpu", progress=False)
    for name, value in network.state_dict().items():
        torch.testing.assert_close(result.network.state_dict()[name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("method", ["activation", "weight"])
@pytest.mark.parametrize("reference", [0, "average"])
def test_merging_permuted_copies_returns_the_network(method, reference):
    network = deep(0)
    spec = spec_of(network)
    copies = [network, *(permute_network(network, spec, random_permutations(spec, seed)) for seed in (1, 2, 3))]
    assert not same_state(copies[1], network)
    result = lp.merge(copies, digits_loaders(), method=method, reference=reference, fixup="none", accelerator="cpu", progress=False)
    for name, value in network.state_dict().items():
        torch.testing.assert_close(result.network.state_dict()[name], value, rtol=0, atol=1e-6, msg=name)
    assert result.summary["converged"] and result.summary["rounds"] == (1 if reference == "average" else 0)
    x = torch.randn(16, 64)
    torch.testing.assert_close(result.network(x), network(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("method", ["activation", "weight"])
@pytest.mark.parametrize("each_other", [False, True])
def test_permuted_copies_of_a_transformer_are_recovered_with_its_attention_heads(method, each_other):
    """Attention heads and their dims have no activations to correlate (weight matched, the probed groups held)."""
    torch.manual_seed(0)
    network = GPT(vocab_size=8, context=16, width=32, depth=1, heads=4)
    spec = spec_of(network)
    assert weight_matched(spec)
    copies = [network, *(permute_network(network, spec, random_permutations(spec, seed)) for seed in (1, 2))]
    batches = alignment_batches(TokensDataModule(sequences=200), 0.5, 0)
    found = to_each_other(copies, spec, method, batches) if each_other else to_reference(copies, spec, method, batches, 0)
    merged = average([permute_network(c, spec, p) for c, p in zip(copies, found.permutations)])
    for name, value in network.state_dict().items():
        torch.testing.assert_close(merged.state_dict()[name], value, rtol=0, atol=1e-6, msg=name)


def test_a_transformer_merge_reports_its_ensemble_over_token_positions():
    """Permuted copies of one GPT: the merge, the ensemble and every endpoint score the network's own numbers."""
    torch.manual_seed(0)
    network = GPT(vocab_size=8, context=16, width=32, depth=1, heads=4)
    spec = spec_of(network)
    copies = [network, permute_network(network, spec, random_permutations(spec, 1))]
    result = lp.merge(copies, TokensDataModule(sequences=200), method="weight", fixup="none", progress=False)
    rows = {r["kind"]: r for r in result.rows}
    for kind in ("merged", "ensemble"):
        for key in ("test_accuracy", "test_loss"):
            assert rows[kind][key] == pytest.approx(rows["endpoint"][key], rel=1e-5), (kind, key)


def test_regressors_are_compared_by_loss(tmp_path):
    torch.manual_seed(0)
    network = MLP(1, [16, 16], 1, activation="tanh")
    spec = spec_of(network)
    data = PolynomialDataModule(num_train=200, num_test=50)
    result = lp.merge([network, permute_network(network, spec, random_permutations(spec, 1))], data, fixup="repair",
                      accelerator="cpu", progress=False)
    rows = {r["kind"]: r for r in result.rows}
    assert result.summary["task"] == "regression" and all(r["test_accuracy"] is None for r in result.rows)
    assert rows["merged"]["test_loss"] == pytest.approx(rows["endpoint"]["test_loss"], rel=1e-4)
    assert rows["ensemble"]["test_loss"] == pytest.approx(rows["endpoint"]["test_loss"], rel=1e-5)
    assert result.summary["gain"]["test"] == {"loss_below_unaligned": rows["unaligned"]["test_loss"] - rows["merged"]["test_loss"]}
    assert result.summary["gain"]["test"]["loss_below_unaligned"] > 0
    result.save(tmp_path)
    assert load_network(tmp_path / "merged.ckpt").task == "regression"


def test_the_command_writes_the_table_and_a_checkpoint_that_evaluates_to_it(digits_endpoints, third, tmp_path):
    ckpts = [digits_endpoints.a, digits_endpoints.b, third]
    main(["merge", "--ckpts", f"[{', '.join(map(str, ckpts))}]", "--out", str(tmp_path / "cli"), "--method", "weight",
           "--reference", "average", "--fixup", "repair", *QUIET])
    out = tmp_path / "cli"
    summary = json.loads((out / "merge.json").read_text())["summary"]
    assert {p.name for p in out.iterdir()} >= {"merge.csv", "merge.md", "merge.json", "permutations.json", "merged.ckpt", "merge.png"}
    with (out / "merge.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [r["kind"] for r in table] == ["endpoint"] * 3 + ["unaligned", "aligned", "merged", "ensemble"]
    assert [r["network"] for r in table[:3]] == [str(c) for c in ckpts]
    assert summary["networks"] == [str(c) for c in ckpts] and summary["reference"] == "average" and summary["fixup"] == "repair"
    merged = load_network(out / "merged.ckpt")  # an ordinary checkpoint: spec, task and weights
    assert isinstance(merged.network, MLP) and merged.task == "classification"
    loss, accuracy = evaluate(merged.network, DigitsDataModule().eval_dataloader("test"), get_task("classification"))
    assert (loss, accuracy) == (float(table[5]["test_loss"]), float(table[5]["test_accuracy"]))
    api = lp.merge(ckpts, method="weight", reference="average", fixup="repair", accelerator="cpu", progress=False)
    assert api.rows == json.loads((out / "merge.json").read_text())["rows"] == MergeResult.load(out).rows
    assert same_state(api.network, merged.network)
    permutations = json.loads((out / "permutations.json").read_text())["permutations"]
    assert [{k: p.tolist() for k, p in perms.items()} for perms in api.permutations] == permutations
    assert isinstance(api.plot(), matplotlib.figure.Figure)
    main(["validate", "--ckpt_path", str(out / "merged.ckpt"), "--data", "landscape_pl.data.DigitsDataModule",
          "--trainer.enable_progress_bar=false", "--trainer.logger=false"])


def test_merging_to_one_reference_keeps_its_unit_order(digits_endpoints, third):
    ckpts = [digits_endpoints.a, digits_endpoints.b, third]
    result = lp.merge(ckpts, reference=2, fixup="none", accelerator="cpu", progress=False)
    assert all(torch.equal(p, torch.arange(len(p))) for p in result.permutations[2].values())
    assert not all(torch.equal(p, torch.arange(len(p))) for p in result.permutations[0].values())
    aligned = [permute_network(load_network(c).network, spec_of(result.network), p) for c, p in zip(ckpts, result.permutations)]
    for name, value in result.network.state_dict().items():
        torch.testing.assert_close(value, torch.stack([a.state_dict()[name] for a in aligned]).mean(0), rtol=0, atol=0)


def pairwise(networks: list[nn.Module], perms: list[dict], method: str) -> float:
    """What multi-model matching climbs: Σ over pairs of corresponding units' correlations, or of <P_i θ_i, P_j θ_j>."""
    spec = spec_of(networks[0])
    aligned = [permute_network(n, spec, p) for n, p in zip(networks, perms)]
    total = 0.0
    for i in range(len(aligned)):
        for j in range(i + 1, len(aligned)):
            if method == "activation":
                correlations = cross_correlations(aligned[i], aligned[j], spec, digits_loaders()["train"])
                total += sum(float(c.matrix.diagonal().sum()) for c in correlations.values())
            else:
                total += sum(float((a.detach() * b.detach()).sum()) for a, b in zip(aligned[i].parameters(), aligned[j].parameters()))
    return total


@pytest.mark.parametrize("method", ["activation", "weight"])
def test_matching_to_each_other_climbs_the_pairwise_objective_and_ends(digits_endpoints, third, method):
    networks = [load_network(c).network for c in (digits_endpoints.a, digits_endpoints.b, third)]
    spec, batches = spec_of(networks[0]), digits_loaders()["train"]
    start = to_reference(networks, spec, method, batches, 0)
    found = to_each_other(networks, spec, method, batches, rounds=20)
    assert found.converged and 1 <= found.rounds < 20
    assert pairwise(networks, found.permutations, method) > pairwise(networks, start.permutations, method)
    assert found.rounds > 1 and not to_each_other(networks, spec, method, batches, rounds=found.rounds - 1).converged


class Untraceable(nn.Module):
    """Control flow on a tensor's value: torch.fx cannot trace it, so it has no permutation spec."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(64, 8), nn.Linear(8, 10)

    def forward(self, x):
        hidden = self.a(x)
        return self.b(hidden.relu() if hidden.sum() > 0 else hidden)


def test_bad_input_is_named(digits_endpoints, tmp_path):
    network, data = load_network(digits_endpoints.a).network, digits_loaders()
    with pytest.raises(LandscapeError, match="merge needs at least 2 networks"):
        lp.merge([network], data)
    with pytest.raises(LandscapeError, match="merge needs at least 2 networks"):
        lp.merge(network, data)
    with pytest.raises(LandscapeError, match="network 0 and network 1 are different architectures: first difference at layers.1.weight"):
        lp.merge([network, MLP(64, [64], 10)], data)
    with pytest.raises(LandscapeError, match="network 0 is a MLP and network 1 a Sequential"):
        lp.merge([network, nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))], data)
    with pytest.raises(LandscapeError, match="cannot derive a permutation spec for Untraceable"):
        lp.merge([Untraceable(), Untraceable()], data)
    with pytest.raises(LandscapeError, match="reference=2: give the index of one of the 2 networks"):
        lp.merge([network, network], data, reference=2)
    with pytest.raises(LandscapeError, match="fixup must be one of"):
        lp.merge([network, network], data, fixup="bn")
    with pytest.raises(LandscapeError, match="data is needed for networks given in memory"):
        lp.merge([network, network])
    with pytest.raises(SystemExit) as exit_info:
        main(["merge", "--ckpts", f"[{digits_endpoints.a}]", "--out", str(tmp_path / "one"), *QUIET])
    assert exit_info.value.code == 2 and not (tmp_path / "one").exists()
