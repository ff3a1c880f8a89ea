"""Transformers end to end: a torchvision ViT and the GPT decoder get their specs derived (heads, per-head
query/key and value dims, MLP units, the residual stream) and checked; trained briefly (the ViT on the
bundled digits, the GPT on the Markov-chain tokens through the CLI), weight and activation alignment
both lower the midpoint barrier, and a curve between the aligned pair trains."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
import torchvision
from conftest import CONFIGS, fit
from torch import nn

import landscape_pl as lp
from landscape_pl.api import PathResult
from landscape_pl.cli import main
from landscape_pl.data import DigitsDataModule, TokensDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.io import load_network, save_network
from landscape_pl.models import GPT, Architecture
from landscape_pl.symmetry import Axis, permute_network, random_permutations, spec_of
from landscape_pl.tasks import get_task

TRAINER = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}


class DigitsViT(Architecture, torchvision.models.VisionTransformer):
    """torchvision's ViT (8x8 images in 2x2 patches, 2 layers, 4 heads, width 64) reading grey digits (an
    Architecture, so that its checkpoints record how to rebuild it)."""

    def __init__(self) -> None:
        super().__init__(8, 2, 2, 4, 64, 128, num_classes=10)
        self.conv_proj = nn.Conv2d(1, 64, 2, 2)


def test_the_vision_transformer_spec_passes_the_check() -> None:
    torch.manual_seed(0)
    spec = spec_of(torchvision.models.VisionTransformer(8, 2, 2, 4, 64, 128, num_classes=10))  # checked by construction inside
    block = "encoder.layers.encoder_layer_0.self_attention"
    assert spec[f"{block}.heads"].size == 4
    assert Axis(f"{block}.in_proj_weight", 0, 1, 64 + 16) in spec[f"{block}.head1.qk"].axes  # head 1's key rows
    assert Axis(f"{block}.in_proj_weight", 0, 1, 128 + 16) in spec[f"{block}.head1.v"].axes  # head 1's value rows
    assert spec["encoder.layers.encoder_layer_1.mlp.0"].size == 128


def test_the_gpt_spec_passes_the_check_with_one_entry_for_the_tied_embedding() -> None:
    torch.manual_seed(0)
    net = GPT(vocab_size=8, context=16, width=32, depth=2, heads=4)
    spec = spec_of(net)  # checked by construction inside: a permuted copy computes the same logits
    stream = spec["stream0"]
    assert {"token.weight", "position.weight", "norm.weight", "blocks.1.mlp.2.weight"} <= {a.entry for a in stream.axes}
    assert [a for a in stream.axes if a.entry == "token.weight"] == [Axis("token.weight", 1)]  # embedding and read-out: one weight
    assert all(p.dim == 2 for p in stream.probes) and stream.probes
    qkv, out = "blocks.0.attention.qkv", "blocks.0.attention.proj"
    heads = spec["blocks.0.attention.heads"]
    assert heads.size == 4 and not heads.probes
    assert set(heads.axes) == {*(Axis(f"{qkv}.{e}", 0, 8, part * 32) for e in ("weight", "bias") for part in range(3)),
                               Axis(f"{out}.weight", 1, 8)}
    for i in range(4):  # q and k rows of head i: one permutation; v rows and the projection's columns: another
        assert set(spec[f"blocks.0.attention.head{i}.qk"].axes) == {Axis(f"{qkv}.{e}", 0, 1, part * 32 + i * 8)
                                                                     for e in ("weight", "bias") for part in (0, 1)}
        assert set(spec[f"blocks.0.attention.head{i}.v"].axes) == {Axis(f"{qkv}.weight", 0, 1, 64 + i * 8),
                                                                    Axis(f"{qkv}.bias", 0, 1, 64 + i * 8), Axis(f"{out}.weight", 1, 1, i * 8)}
    assert spec["blocks.1.mlp.0"].size == 128 and spec["blocks.1.mlp.0"].probes[0].dim == 2


class AliasedHead(GPT):
    """nanoGPT's tying: a separate read-out module whose weight *is* the token embedding (two state-dict names)."""

    def __init__(self) -> None:
        super().__init__(vocab_size=8, context=16, width=32, depth=1, heads=4)
        self.head = nn.Linear(32, 8, bias=False)
        self.head.weight = self.token.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.head(self.norm(self.blocks(self.token(tokens) + self.position(positions))))


def test_a_tied_read_out_under_two_names_is_checked_and_permuted_as_one_tensor() -> None:
    torch.manual_seed(0)
    net = AliasedHead().eval()
    assert {"token.weight", "head.weight"} <= set(net.state_dict())
    spec = spec_of(net)  # the check runs on the tied tensor once
    assert "head.weight" not in spec.axes_by_entry and Axis("token.weight", 1) in spec["stream0"].axes
    permuted = permute_network(net, spec, random_permutations(spec, seed=3))
    assert permuted.head.weight is permuted.token.weight and not torch.equal(permuted.token.weight, net.token.weight)
    tokens = torch.randint(0, 8, (3, 16))
    torch.testing.assert_close(permuted(tokens), net(tokens), rtol=1e-5, atol=1e-5)


def test_token_data_is_a_seeded_chain_with_a_fixed_split_and_next_token_targets() -> None:
    first, again, other = (TokensDataModule(sequences=50, length=6, split_seed=seed) for seed in (0, 0, 1))
    x, y = next(iter(first.eval_dataloader("train")))
    assert x.shape == y.shape == (40, 6) and len(first.split("test")) == 10 and torch.equal(x[:, 1:], y[:, :-1])  # y: x one on
    assert torch.equal(x, next(iter(again.eval_dataloader("train")))[0])
    assert not torch.equal(x, next(iter(other.eval_dataloader("train")))[0])
    windows = torch.cat([x[:, :1], y], 1).unfold(1, 3, 1).reshape(-1, 3)  # every token is a successor of the two before it
    assert all(int(t) in first.chain.successors[int(c)].tolist() for c, t in zip(first.chain.context(windows[:, :2]), windows[:, 2]))
    with pytest.raises(LandscapeError, match=r"data branching=9 must be <= vocab_size=8"):
        TokensDataModule(branching=9)


def test_the_token_task_averages_loss_and_accuracy_over_each_sequences_positions() -> None:
    task = get_task("tokens")
    logits = torch.randn(3, 5, 4)
    targets = logits.argmax(-1)
    targets[0, :2] = (targets[0, :2] + 1) % 4  # sequence 0: 3 of 5 right, the others all right
    expected = torch.nn.functional.cross_entropy(logits.reshape(15, 4), targets.flatten())
    torch.testing.assert_close(task.loss(logits, targets), expected)
    assert task.correct(logits, targets).item() == pytest.approx(3 / 5 + 2)


def trained_vit(seed: int, data: DigitsDataModule, path: Path) -> Path:
    torch.manual_seed(seed)  # init_seed resets the layers with reset_parameters; MultiheadAttention's in_proj keeps this draw
    network = DigitsViT()
    module = lp.EndpointModule(network, optimizer=partial(torch.optim.AdamW, lr=5e-3), init_seed=seed)
    L.Trainer(max_epochs=2, default_root_dir=path.parent, **TRAINER).fit(module, datamodule=data)  # init.ckpt goes there
    return save_network(network, path, "classification")


@pytest.fixture(scope="module")
def vit_pair(tmp_path_factory) -> tuple[Path, Path, DigitsDataModule]:
    folder = tmp_path_factory.mktemp("vit")
    data = DigitsDataModule(flatten=False)
    return trained_vit(1, data, folder / "a.ckpt"), trained_vit(2, data, folder / "b.ckpt"), data


@pytest.fixture(scope="module")
def gpt_pair(tmp_path_factory) -> tuple[Path, Path, TokensDataModule]:
    """Two GPTs from configs/tokens/gpt.yaml through the CLI (seeds 1 and 2, 3 epochs on 1000 sequences)."""
    runs = [fit(CONFIGS / "tokens" / "gpt.yaml", tmp_path_factory.mktemp(f"gpt{seed}"), seed, 3, "--data.init_args.sequences=1000")
            for seed in (1, 2)]
    return runs[0] / "checkpoints" / "last.ckpt", runs[1] / "checkpoints" / "last.ckpt", TokensDataModule(sequences=1000)


def aligned(pair, method: str, folder: Path, cli: bool) -> dict:
    """Align B to A through the CLI (data from B's run) or the Python API; the report (aligned.ckpt is in ``folder``)."""
    a, b, data = pair
    if cli:
        main(["align", "--start", str(a), "--end", str(b), "--out", str(folder), "--method", method, "--points", "3",
              "--splits", "[test]", "--tensorboard", "false", "--progress", "false"])
        return json.loads((folder / "report.json").read_text())
    result = lp.align(a, b, data, method=method, points=3, splits=("test",), progress=False)
    result.save(folder)
    return result.report


@pytest.mark.parametrize("family", ["vit_pair", "gpt_pair"])
def test_both_alignments_lower_the_barrier_and_a_curve_between_the_aligned_pair_trains(family: str, request, tmp_path) -> None:
    a, b, data = pair = request.getfixturevalue(family)
    end = load_network(b).network.eval()
    x = next(iter(data.eval_dataloader("test")))[0][:64]
    for method in ("weight", "activation"):  # the GPTs' weight matching through the CLI, as a user would run it
        report = aligned(pair, method, tmp_path / method, cli=family == "gpt_pair" and method == "weight")
        barrier = report["barrier"]
        assert barrier["aligned"]["test"] < barrier["unaligned"]["test"], (method, barrier)
        with torch.no_grad():  # the aligned end is B itself, its units reordered
            torch.testing.assert_close(load_network(tmp_path / method / "aligned.ckpt").network.eval()(x), end(x), rtol=1e-4, atol=1e-4)
    # activation: the heads and head dims have no probes, so they are weight matched with the probed groups held
    assert {name for name in report["weight_matched"] if name.endswith(".heads")}
    curve = lp.CurveModule(str(a), str(tmp_path / "activation" / "aligned.ckpt"), optimizer=partial(torch.optim.Adam, lr=3e-3))
    L.Trainer(max_epochs=1, limit_val_batches=0, default_root_dir=tmp_path, **TRAINER).fit(curve, datamodule=data)
    line = next(r.loss for r in PathResult.load(tmp_path / "activation" / "aligned").rows if r.key == 0.5 and r.split == "test")
    trained = lp.evaluate_curve(curve, data, t=[0.5], splits=("test",), progress=False).rows[0].loss
    assert trained < line, (trained, line)
