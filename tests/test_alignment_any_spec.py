"""Alignment on any spec the derivation makes: offsets and blocks, residual streams, attention heads, PAM."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import landscape_pl as lp
from landscape_pl.data import DigitsDataModule
from landscape_pl.errors import LandscapeError
from landscape_pl.io import save_network
from landscape_pl.models import ResNet
from landscape_pl.modules.pam import PAMModule
from landscape_pl.paths import recompute_batchnorm
from landscape_pl.symmetry import (
    Axis,
    Group,
    PermutationSpec,
    Probe,
    align_activations,
    as_matrix,
    check_spec,
    inverse,
    permute,
    permute_network,
    random_permutations,
    spec_of,
    weight_match,
    weight_matched,
)
from landscape_pl.symmetry.apply import nesting
from landscape_pl.symmetry.weight_matching import unit_rows


class Concatenated(nn.Module):
    """Two convs concatenated, one BatchNorm over both (offsets), flattened into a linear layer (blocks)."""

    def __init__(self) -> None:
        super().__init__()
        self.left, self.right = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 5, 3, padding=1)
        self.norm, self.pool, self.act = nn.BatchNorm2d(9), nn.AdaptiveAvgPool2d(2), nn.ReLU()
        self.fc, self.fc_act, self.out = nn.Linear(36, 12), nn.Tanh(), nn.Linear(12, 3)

    def forward(self, x):
        h = self.act(self.norm(torch.cat([self.left(x), self.right(x)], 1)))
        return self.out(self.fc_act(self.fc(self.pool(h).flatten(1))))

    def permutation_spec(self) -> PermutationSpec:
        norm = ("weight", "bias", "running_mean", "running_var")
        return PermutationSpec((
            Group("left", 4, (Axis("left.weight", 0), Axis("left.bias", 0), *(Axis(f"norm.{e}", 0) for e in norm),
                              Axis("fc.weight", 1, block=4)), (Probe("left"),)),
            Group("right", 5, (Axis("right.weight", 0), Axis("right.bias", 0), *(Axis(f"norm.{e}", 0, offset=4) for e in norm),
                               Axis("fc.weight", 1, block=4, offset=16)), (Probe("right"),)),
            Group("fc", 12, (Axis("fc.weight", 0), Axis("fc.bias", 0), Axis("out.weight", 1)), (Probe("fc_act"),)),
        ))


@torch.no_grad()
def lively(net: nn.Module, x: torch.Tensor, seed: int = 0) -> nn.Module:
    """Random norm affines and head, BatchNorm statistics of ``x``: no unit constant, outputs far from 0."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
            module.weight.copy_(1 + 0.3 * torch.randn(module.weight.shape, generator=generator))
            module.bias.copy_(0.3 * torch.randn(module.bias.shape, generator=generator))
        if isinstance(module, nn.Linear) and not module.weight.any():  # torchvision's ViT head starts at 0
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator) / module.in_features**0.5)
    recompute_batchnorm(net, [(x[i:i + 32],) for i in range(0, len(x), 32)])
    return net.eval()


def copy_of(net: nn.Module, spec: PermutationSpec, seed: int) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A randomly permuted copy of ``net`` and the permutations that undo it."""
    perms = random_permutations(spec, seed)
    return permute_network(net, spec, perms), inverse(perms, spec)


def assert_recovers(net: nn.Module, copy: nn.Module, spec: PermutationSpec, found: dict, expected: dict, x: torch.Tensor) -> None:
    assert {g: found[g].tolist() for g in spec.names} == {g: expected[g].tolist() for g in spec.names}
    realigned = permute_network(copy, spec, found)
    for key, value in net.state_dict().items():
        torch.testing.assert_close(realigned.state_dict()[key], value, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(copy(x), net(x), rtol=1e-5, atol=1e-5)


def test_offsets_and_blocks_are_permuted_read_and_matched_as_their_span() -> None:
    torch.manual_seed(0)
    x = torch.randn(256, 3, 6, 6)
    net = lively(Concatenated(), x)
    spec = spec_of(net)  # declared; checked by permuting a copy
    assert check_spec(net, spec, x[:4]) <= 1e-6
    rows = unit_rows(net.state_dict()["fc.weight"], spec["right"].axes[-1], 5)
    assert torch.equal(rows, net.fc.weight[:, 16:36].T.reshape(5, 48))  # unit c: its 4 columns 16 + 4c ..., all rows
    copy, expected = copy_of(net, spec, seed=1)
    hard = permute(net.state_dict(), spec, random_permutations(spec, 1))
    soft = permute(net.state_dict(), spec, {g: as_matrix(p) for g, p in random_permutations(spec, 1).items()})
    assert all(torch.equal(hard[k], soft[k]) for k in hard) and torch.equal(hard["norm.running_var"], copy.norm.running_var)
    assert_recovers(net, copy, spec, weight_match(net.state_dict(), copy.state_dict(), spec).permutations, expected, x)
    assert_recovers(net, copy, spec, align_activations(net, copy, spec, [(x,)])[0], expected, x)


@pytest.fixture(scope="module")
def resnet() -> tuple[nn.Module, PermutationSpec, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(256, 3, 8, 8)
    net = lively(ResNet(20), x)
    spec = spec_of(net)
    assert not hasattr(net, "permutation_spec") and [len(g.probes) for g in spec.groups if g.name.startswith("stream")] == [4, 3, 3]
    return net, spec, x


@pytest.mark.parametrize("method", ["activation", "weight"])
def test_a_residual_network_on_its_derived_spec(resnet, method: str) -> None:
    net, spec, x = resnet
    copy, expected = copy_of(net, spec, seed=2)
    if method == "activation":
        found, correlations = align_activations(net, copy, spec, [(x[:128],), (x[128:],)])
        assert set(correlations) == set(spec.names) and weight_matched(spec) == []
    else:
        match = weight_match(net.state_dict(), copy.state_dict(), spec)
        found = match.permutations
        assert 2 <= match.sweeps <= 5 and match.gain > 0
    assert_recovers(net, copy, spec, found, expected, x)


def test_pam_fits_on_the_derived_spec_of_a_residual_network(tmp_path) -> None:
    torch.manual_seed(0)
    ends = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        ends.append(save_network(ResNet(8, 4, in_channels=1), tmp_path / f"end{seed}.ckpt", "classification"))
    module = PAMModule(str(ends[0]), str(ends[1]), iterations=1, permutation_epochs=1, curve_epochs=1,
                       permutation_lr=10.0, init_permutation="weight", objective_batches=1, objective_points=2)
    assert [g.name for g in module.permutation_spec.groups if len(g.probes) > 1] == ["stream0"]  # derived: the stem's stream
    trainer = L.Trainer(max_epochs=2, limit_train_batches=2, limit_val_batches=0, default_root_dir=tmp_path,
                        enable_progress_bar=False, enable_model_summary=False, logger=False, enable_checkpointing=False)
    trainer.fit(module, DigitsDataModule(flatten=False, batch_size=32))
    for p in module.perms:  # rounded back to a permutation after the permutation phase
        assert torch.equal(p.sum(0), torch.ones(len(p))) and set(p.unique().tolist()) == {0.0, 1.0}
    assert [h["phase"] for h in module.history] == ["start", "permutation", "curve"]


@pytest.fixture(scope="module")
def vit() -> tuple[nn.Module, PermutationSpec, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(128, 3, 8, 8)
    net = lively(torchvision.models.VisionTransformer(8, 2, 2, 4, 64, 128, num_classes=10), x)
    return net, spec_of(net), x


def test_weight_matching_recovers_a_vision_transformer_heads_and_head_dims(vit) -> None:
    net, spec, x = vit
    copy, expected = copy_of(net, spec, seed=3)
    attention = "encoder.layers.encoder_layer_1.self_attention"
    assert expected[f"{attention}.heads"].tolist() != [0, 1, 2, 3]
    match = weight_match(net.state_dict(), copy.state_dict(), spec)
    assert match.sweeps <= 4
    assert_recovers(net, copy, spec, match.permutations, expected, x)


def test_activation_alignment_of_a_vision_transformer_weight_matches_the_heads(vit) -> None:
    """Units on the last dim (batch, tokens, units); heads and head dims have no probe: weight matched, and listed."""
    net, spec, x = vit
    copy, expected = copy_of(net, spec, seed=4)
    found, correlations = align_activations(net, copy, spec, [(x[:64],), (x[64:],)])
    probed = ["stream0", "encoder.layers.encoder_layer_0.mlp.0", "encoder.layers.encoder_layer_1.mlp.0"]
    assert list(correlations) == probed and all(p.dim == 2 for g in probed for p in spec[g].probes)
    assert weight_matched(spec) == [g for g in spec.names if g not in probed] and len(weight_matched(spec)) == 2 * (1 + 4 * 2)
    for name in probed:  # the probed groups by their correlations alone: a copy's units correlate 1 with their twins
        assert torch.equal(correlations[name].matrix.argmax(1), expected[name])
    assert_recovers(net, copy, spec, found, expected, x)
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=64)
    result = lp.align(net, copy, loader, fraction=1.0, points=0, accelerator="cpu", progress=False)
    assert result.summary["weight_matched"] == weight_matched(spec) and list(result.summary["groups"]) == probed
    assert {g: p.tolist() for g, p in result.permutations.items()} == {g: expected[g].tolist() for g in spec.names}


def test_a_group_nested_in_another_must_come_after_it() -> None:
    """Permutations apply in the spec's order, and a head's dims are indexed by the head's place after the heads move."""
    heads = Group("heads", 2, (Axis("w", 0, block=3),))
    first_dims = Group("head0", 3, (Axis("w", 0),))
    assert nesting(PermutationSpec((heads, first_dims)))["heads"][0].unit == 0
    with pytest.raises(LandscapeError, match=r"group 'head0' lies inside the units of 'heads' but comes first.*list 'heads' before it"):
        nesting(PermutationSpec((first_dims, heads)))


class Unread:
    """Batches that must not be read."""

    def __iter__(self):
        raise AssertionError("read the data although no group has probes")


def test_a_spec_without_probes_is_weight_matched_whole_without_reading_data() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 12, 3, groups=4), nn.GroupNorm(4, 12), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 3)).eval()
    spec = PermutationSpec(tuple(Group(g.name, g.size, g.axes) for g in spec_of(net).groups))  # derived, probes dropped
    assert len(spec.names) > 2 and weight_matched(spec) == list(spec.names)
    copy, expected = copy_of(net, spec, seed=5)
    found, correlations = align_activations(net, copy, spec, Unread())
    assert correlations == {}
    assert_recovers(net, copy, spec, found, expected, torch.randn(16, 3, 8, 8))


def test_align_checks_the_spec_on_the_data_it_aligns_on() -> None:
    """12x12 images are no side the guess tries: the spec is derived and checked on the data's own inputs."""
    torch.manual_seed(0)
    make = lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 10 * 10, 3))  # noqa: E731
    net_a, net_b = make(), make()
    with pytest.raises(LandscapeError, match="cannot guess an input for Sequential"):
        spec_of(net_a)
    x, y = torch.randn(64, 1, 12, 12), torch.randint(0, 3, (64,))
    loader = DataLoader(TensorDataset(x, y), batch_size=32)
    result = lp.align(net_a, net_b, {"train": loader, "test": loader}, points=0, accelerator="cpu", progress=False)
    assert result.spec.names == ("0",) and sorted(result.permutations["0"].tolist()) == [0, 1, 2, 3]
    torch.testing.assert_close(result.network(x), net_b(x))
