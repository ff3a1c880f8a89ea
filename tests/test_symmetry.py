"""Permutation specs, applying permutations, activation alignment and weight matching (no CLI)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landscape_pl.errors import LandscapeError
from landscape_pl.models import MLP, VGG, VGG16BN, ResNet, SimpleCNN, TinySix, TinyTen
from landscape_pl.paths import recompute_batchnorm
from landscape_pl.symmetry import (
    Axis, Group, PermutationSpec, Probe, align_activations, as_matrix, check_pair, correlation_signature,
    cross_correlations, find_permutation, inverse, linear_midpoint, permute, permute_network,
    random_permutations, register, signature, spec_of,
)
from landscape_pl.symmetry.derive import REGISTRY

# VGG16 at 1/8 width: VGG16-BN's exact structure, small enough to align in a unit test.
VGG_EIGHTH = (8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M")

ARCHITECTURES = {
    "mlp": (lambda: MLP(64, (32, 16)), (64,)),
    "simple_cnn": (lambda: SimpleCNN(1, 8, (8, 16), 32), (1, 8, 8)),
    "tiny_six": (lambda: TinySix(), (3, 16, 16)),
    "tiny_ten": (lambda: TinyTen(), (3, 16, 16)),
    "vgg": (lambda: VGG(VGG_EIGHTH, hidden=(32, 32)), (3, 32, 32)),
    "resnet20": (lambda: ResNet(20), (3, 16, 16)),
}


@torch.no_grad()
def lively(net: nn.Module, x: torch.Tensor, seed: int = 0) -> nn.Module:
    """An untrained net made to behave like a trained one on ``x``: random BatchNorm affine parameters,
    statistics recomputed on ``x``, linear layers centred so that no unit is constant on ``x``."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.copy_(1 + 0.3 * torch.randn(module.weight.shape, generator=generator))
            module.bias.copy_(0.3 * torch.randn(module.bias.shape, generator=generator))
    recompute_batchnorm(net, [(x[i:i + 16],) for i in range(0, len(x), 16)])

    def centre(module: nn.Linear, _args, output: torch.Tensor) -> torch.Tensor:
        mean = output.mean(0)
        module.bias -= mean
        return output - mean

    hooks = [m.register_forward_hook(centre) for m in net.modules() if isinstance(m, nn.Linear)]
    net.eval()
    net(x)
    for handle in hooks:
        handle.remove()
    return net


def setup(name: str, images: int = 32) -> tuple[nn.Module, torch.Tensor, list]:
    factory, shape = ARCHITECTURES[name]
    torch.manual_seed(0)
    x = torch.randn(images, *shape)
    net = lively(factory(), x)
    return net, x, [(x[i:i + 16],) for i in range(0, len(x), 16)]


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_permutation_keeps_the_function(name: str) -> None:
    net, x, _ = setup(name)
    spec = spec_of(net)
    perms = random_permutations(spec, seed=1)
    permuted = permute_network(net, spec, perms)
    moved = [n for n, v in net.state_dict().items() if v.is_floating_point() and not torch.equal(v, permuted.state_dict()[n])]
    assert set(moved) == set(spec.axes_by_entry)  # every entry of the spec really moved
    with torch.no_grad():
        torch.testing.assert_close(permuted(x), net(x), rtol=1e-4, atol=1e-5)


def test_vgg16bn_permutation_keeps_the_function_batchnorm_included() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    net = VGG16BN()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
                m.weight.normal_(1, 0.2)
    net.eval()
    spec = spec_of(net)
    assert len(spec.groups) == 15 and all(Axis(f"layers.{i}.running_var", 0) in spec[f"layers.{i - 1}"].axes for i in (1, 41))
    permuted = permute_network(net, spec, random_permutations(spec, seed=2))
    with torch.no_grad():
        torch.testing.assert_close(permuted(x), net(x), rtol=1e-4, atol=1e-5)


def test_an_incomplete_spec_changes_the_function() -> None:
    """The exactness tests can fail: leave out the BatchNorm running mean and outputs change."""
    net, x, _ = setup("tiny_six")
    spec = spec_of(net)
    first = spec.groups[0]
    broken = PermutationSpec((Group(first.name, first.size, tuple(a for a in first.axes if "running_mean" not in a.entry)), *spec.groups[1:]))
    permuted = permute_network(net, broken, random_permutations(spec, seed=1))
    with torch.no_grad():
        assert (permuted(x) - net(x)).abs().max() > 1e-2


@pytest.mark.parametrize("name", list(ARCHITECTURES))
@pytest.mark.parametrize("method", ["activation", "weight"])
def test_alignment_recovers_a_permuted_copy(name: str, method: str) -> None:
    net, _, batches = setup(name)
    spec = spec_of(net)
    perms = random_permutations(spec, seed=3)
    copy = permute_network(net, spec, perms)
    found = find_permutation(net, copy, method, batches)
    expected = inverse(perms)
    assert {g: found[g].tolist() for g in spec.names} == {g: expected[g].tolist() for g in spec.names}
    realigned = permute_network(copy, spec, found)
    for key, value in net.state_dict().items():
        torch.testing.assert_close(realigned.state_dict()[key], value, rtol=0, atol=0)


def test_resnet_streams_share_one_permutation() -> None:
    spec = spec_of(ResNet(20))
    streams = [g for g in spec.groups if g.name.startswith("stream")]
    assert [g.size for g in streams] == [16, 32, 64]
    assert [len(g.probes) for g in streams] == [4, 3, 3]  # stem + 3 blocks, then 3 blocks per stage
    entries = {a.entry for a in streams[1].axes}
    assert {"blocks.3.shortcut.0.weight", "blocks.3.shortcut.1.running_var", "blocks.5.bn2.weight", "blocks.6.conv1.weight"} <= entries
    assert "blocks.3.bn1.weight" not in entries


def test_soft_permutations_match_hard_ones_and_are_differentiable() -> None:
    net, x, _ = setup("tiny_six")
    spec = spec_of(net)
    perms = random_permutations(spec, seed=4)
    hard = permute(net.state_dict(), spec, perms)
    soft = permute(net.state_dict(), spec, {g: as_matrix(p) for g, p in perms.items()})
    for key in hard:
        torch.testing.assert_close(soft[key], hard[key], rtol=0, atol=0)
    mix = {g: (0.5 * as_matrix(p) + 0.5 * torch.eye(len(p))).requires_grad_() for g, p in perms.items()}
    relaxed = permute(dict(net.named_parameters()), spec, mix)
    out = torch.func.functional_call(net, {**dict(net.named_buffers()), **relaxed}, (x,))
    out.square().mean().backward()
    assert all(P.grad is not None and P.grad.abs().sum() > 0 for P in mix.values())
    assert all(torch.equal(v, w) for v, w in zip(net.state_dict().values(), setup("tiny_six")[0].state_dict().values()))


def test_dead_and_constant_units_give_zero_correlation_not_nan() -> None:
    net, _, batches = setup("mlp")
    with torch.no_grad():
        fc = net.layers[1]
        fc.weight[3] = 0
        fc.bias[3] = -1.0  # ReLU output 0 everywhere
        fc.weight[5] = 0
        fc.bias[5] = 0.7  # ReLU output 0.7 everywhere
    spec = spec_of(net)
    perms = random_permutations(spec, seed=5)
    copy = permute_network(net, spec, perms)
    with pytest.warns(UserWarning, match=r"constant activations .* units \[3, 5\]"):
        found, correlations = align_activations(net, copy, spec, batches)
    first = correlations["layers.1"]
    assert torch.isfinite(first.matrix).all()
    assert first.dead_a == [3, 5] and first.dead_b == sorted(inverse(perms)["layers.1"][[3, 5]].tolist())
    assert first.matrix[3].abs().max() == 0 and first.matrix[5].abs().max() == 0
    alive = [i for i in range(32) if i not in (3, 5)]
    assert found["layers.1"][alive].tolist() == inverse(perms)["layers.1"][alive].tolist()
    assert found["layers.3"].tolist() == inverse(perms)["layers.3"].tolist()


def test_signature_is_one_for_a_copy_and_the_midpoint_helper_takes_any_network() -> None:
    net, _, batches = setup("tiny_six")
    spec = spec_of(net)
    copy = permute_network(net, spec, random_permutations(spec, seed=6))
    before = signature(cross_correlations(net, copy, spec, batches))
    found, correlations = align_activations(net, copy, spec, batches)
    after = signature(correlations, found)
    assert all(abs(v - 1) < 1e-5 for v in after.values()) and all(v < 0.5 for v in before.values())
    other = lively(TinySix(), batches[0][0], seed=1)
    midpoint = linear_midpoint(net, other, batches)
    result = correlation_signature(midpoint, {"start": net, "end": other}, spec, batches)
    assert set(result) == {"start", "end"} and list(result["start"]["as_is"]) == list(spec.names)
    for side in result.values():
        assert all(side["aligned"][g] >= side["as_is"][g] - 1e-9 for g in spec.names)


def test_networks_of_different_widths_or_architectures_are_refused() -> None:
    with pytest.raises(LandscapeError, match=r"first difference at layers\.1\.weight \(32, 64\) vs layers\.1\.weight \(16, 64\)"):
        check_pair(MLP(64, (32,)), MLP(64, (16,)))
    with pytest.raises(LandscapeError, match="start is a TinySix and end a TinyTen"):
        check_pair(TinySix(), TinyTen())


class Branching(nn.Module):
    """Hidden units rolled along their axis: an operation the derivation refuses (it moves units across positions)."""

    def __init__(self) -> None:
        super().__init__()
        self.left, self.right = nn.Linear(4, 3), nn.Linear(3, 3)

    def forward(self, x):
        return self.right(torch.roll(self.left(x), 1, 1))


class Declared(nn.Module):
    """A user's own architecture that declares its spec."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))

    def permutation_spec(self) -> PermutationSpec:
        axes = (Axis("fc1.weight", 0), Axis("fc1.bias", 0), Axis("fc2.weight", 1))
        return PermutationSpec((Group("hidden", 6, axes, (Probe("act"),)),))


def test_a_user_architecture_declares_or_registers_its_spec() -> None:
    with pytest.raises(LandscapeError, match=r"cannot derive a permutation spec for Branching.*permutation_spec\(self\)"):
        spec_of(Branching())
    with pytest.raises(LandscapeError, match=r"graph node roll \(call_function roll, in module <top>\).*register"):
        spec_of(Branching())
    net = Declared()
    x = torch.randn(64, 4)
    copy = permute_network(net, spec_of(net), random_permutations(spec_of(net), seed=7))
    assert find_permutation(net, copy, "activation", [(x,)])["hidden"].tolist() == inverse(random_permutations(spec_of(net), seed=7))["hidden"].tolist()
    register(Branching, lambda n: PermutationSpec(()))  # declared by hand: units left in place
    try:
        assert spec_of(Branching()).names == ()
    finally:
        del REGISTRY[Branching]
