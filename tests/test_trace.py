"""Specs derived from traced graphs: torchvision and transformer architectures, the construction check, refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from landscape_pl.errors import LandscapeError
from landscape_pl.models import ResNet
from landscape_pl.symmetry import Axis, Group, PermutationSpec, Probe, check_spec, match_weights, permute, spec_of
from landscape_pl.symmetry.trace import derive, example_input


def bn(name: str) -> list[Axis]:
    return [Axis(f"{name}.{e}", 0) for e in ("weight", "bias", "running_mean", "running_var")]


def declared_resnet8() -> dict[str, tuple[int, frozenset, frozenset]]:
    """The spec ResNet(8) was declared with by hand (one block per stage): streams and inner layers."""
    b = [f"blocks.{i}" for i in range(3)]
    groups = [
        Group("stream0", 16, (Axis("conv1.weight", 0), *bn("bn1"), Axis(f"{b[0]}.conv1.weight", 1), Axis(f"{b[0]}.conv2.weight", 0),
                              *bn(f"{b[0]}.bn2"), Axis(f"{b[1]}.conv1.weight", 1), Axis(f"{b[1]}.shortcut.0.weight", 1)),
              (Probe("relu"), Probe(b[0]))),
        Group("stream1", 32, (Axis(f"{b[1]}.shortcut.0.weight", 0), *bn(f"{b[1]}.shortcut.1"), Axis(f"{b[1]}.conv2.weight", 0),
                              *bn(f"{b[1]}.bn2"), Axis(f"{b[2]}.conv1.weight", 1), Axis(f"{b[2]}.shortcut.0.weight", 1)), (Probe(b[1]),)),
        Group("stream2", 64, (Axis(f"{b[2]}.shortcut.0.weight", 0), *bn(f"{b[2]}.shortcut.1"), Axis(f"{b[2]}.conv2.weight", 0),
                              *bn(f"{b[2]}.bn2"), Axis("fc.weight", 1)), (Probe(b[2]),)),
        *[Group(f"{name}.conv1", size, (Axis(f"{name}.conv1.weight", 0), *bn(f"{name}.bn1"), Axis(f"{name}.conv2.weight", 1)),
                (Probe(f"{name}.conv2", input=True),)) for name, size in zip(b, (16, 32, 64))],
    ]
    return {g.name: (g.size, frozenset(g.axes), frozenset(g.probes)) for g in groups}


def test_the_derived_resnet_spec_is_the_declared_one() -> None:
    derived = spec_of(ResNet(8))
    assert {g.name: (g.size, frozenset(g.axes), frozenset(g.probes)) for g in derived.groups} == declared_resnet8()


TORCHVISION = {
    "resnet18": lambda: torchvision.models.resnet18(num_classes=10),
    "mobilenet_v2": lambda: torchvision.models.mobilenet_v2(num_classes=10),
    "densenet121": lambda: torchvision.models.densenet121(num_classes=10),
    "efficientnet_b0": lambda: torchvision.models.efficientnet_b0(num_classes=10),
}


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_torchvision_specs_pass_the_check_and_weight_matching_runs(name: str) -> None:
    torch.manual_seed(0)
    net_a, net_b = TORCHVISION[name](), TORCHVISION[name]()
    spec = spec_of(net_a)  # checked by construction inside
    assert len(spec.groups) > 5 and all(g.probes for g in spec.groups)
    if name in ("resnet18", "mobilenet_v2"):  # offsets (densenet) need weight matching to read slices
        perms = match_weights(net_a.state_dict(), net_b.state_dict(), spec, max_sweeps=2)
        assert set(perms) == set(spec.names)


def test_a_small_vision_transformer_has_heads_and_head_dims_as_groups() -> None:
    net = torchvision.models.VisionTransformer(8, 2, 2, 4, 64, 128, num_classes=10)
    spec = spec_of(net)
    attention = "encoder.layers.encoder_layer_0.self_attention"
    assert spec[f"{attention}.heads"].size == 4 and spec[f"{attention}.head0.qk"].size == 16
    assert Axis(f"{attention}.in_proj_weight", 0, 1, 64) in spec[f"{attention}.head0.qk"].axes  # the key rows
    stream = spec["stream0"]
    assert {"class_token", "encoder.pos_embedding", "conv_proj.weight", "encoder.ln.weight"} <= {a.entry for a in stream.axes}
    assert "heads.head.weight" in {a.entry for a in stream.axes} and all(g.name != "heads.head" for g in spec.groups)


class SqueezeExcite(nn.Module):
    """A gate written with functionals and methods: x * sigmoid(fc(mean(relu(x))))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.gate, self.out = nn.Conv2d(3, 8, 3), nn.Linear(8, 8), nn.Linear(8, 2)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        s = self.gate(h.mean((2, 3))).sigmoid()
        return self.out((h * s[:, :, None, None]).flatten(2).mean(-1))


def test_functional_gates_merge_the_gated_units() -> None:
    spec = spec_of(SqueezeExcite())
    assert spec.names == ("stream0",)  # the gate's outputs scale the conv's channels: one permutation
    assert {Axis("conv.weight", 0), Axis("gate.weight", 0), Axis("gate.weight", 1), Axis("out.weight", 1)} <= set(spec["stream0"].axes)


class GroupNormedCat(nn.Module):
    """A GroupNorm over two concatenated convolutions: its groups would straddle both, which is not derived."""

    def __init__(self) -> None:
        super().__init__()
        self.left, self.right = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3)
        self.norm, self.fc = nn.GroupNorm(2, 8), nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.norm(torch.cat([self.left(x), self.right(x)], 1)).mean((2, 3)))


class Rolled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 2)

    def forward(self, x):
        return self.b(torch.roll(self.a(x), 1, -1))


def test_what_the_derivation_cannot_follow_is_refused_naming_the_node() -> None:
    with pytest.raises(LandscapeError, match=r"GroupNormedCat: graph node norm \(call_module norm, in module norm\).*2 groups of "
                                             r"channels over a concatenation.*permutation_spec\(self\)"):
        spec_of(GroupNormedCat())
    with pytest.raises(LandscapeError, match=r"graph node roll \(call_function roll, in module <top>\).*register"):
        spec_of(Rolled())


def test_a_wrong_spec_fails_the_check_naming_its_group() -> None:
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    spec = derive(net, example_input(net))
    forgot = PermutationSpec((Group("0", 6, tuple(a for a in spec["0"].axes if a.entry != "1.running_var")),))
    assert check_spec(net, spec, example_input(net)) <= 1e-6
    with pytest.raises(LandscapeError, match=r"permuting group '0' alone changes the outputs"):
        check_spec(net, forgot, example_input(net))


def test_slices_of_an_axis_are_permuted_in_place() -> None:
    spec = PermutationSpec((Group("g", 2, (Axis("w", 0, 1, 1),)),))
    assert permute({"w": torch.arange(4.0)}, spec, {"g": torch.tensor([1, 0])})["w"].tolist() == [0, 2, 1, 3]
