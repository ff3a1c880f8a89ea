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
    "regnet_x_400mf": lambda: torchvision.models.regnet_x_400mf(num_classes=10),  # grouped convolutions
}


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_torchvision_specs_pass_the_check_and_weight_matching_runs(name: str) -> None:
    torch.manual_seed(0)
    net_a, net_b = TORCHVISION[name](), TORCHVISION[name]()
    spec = spec_of(net_a)  # checked by construction inside
    # every group has probes, but those inside a grouped convolution's blocks (never a module's whole output)
    assert len(spec.groups) > 5 and all(g.probes for g in spec.groups if ".group" not in g.name and not g.name.endswith(".inputs"))
    assert (name == "regnet_x_400mf") == any(g.name.endswith(".groups") for g in spec.groups)
    perms = match_weights(net_a.state_dict(), net_b.state_dict(), spec, max_sweeps=2)  # densenet: slices by offset
    assert {n: sorted(p.tolist()) for n, p in perms.items()} == {g.name: list(range(g.size)) for g in spec.groups}


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


class NeXtBlock(nn.Module):
    """A ResNeXt-style bottleneck with GroupNorm: stem, 1x1 conv, grouped 3x3 conv (4 groups), 1x1 conv, residual."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.stem_norm = nn.Conv2d(3, 16, 3, padding=1), nn.GroupNorm(4, 16)
        self.reduce, self.bn = nn.Conv2d(16, 8, 1), nn.BatchNorm2d(8)
        self.grouped, self.norm = nn.Conv2d(8, 12, 3, padding=1, groups=4), nn.GroupNorm(4, 12)
        self.expand, self.fc = nn.Conv2d(12, 16, 1), nn.Linear(16, 3)

    def forward(self, x):
        h = torch.relu(self.stem_norm(self.stem(x)))
        y = self.expand(torch.relu(self.norm(self.grouped(torch.relu(self.bn(self.reduce(h)))))))
        return self.fc((h + y).mean((2, 3)))


def test_grouped_convolutions_and_group_norms_permute_whole_groups_and_units_inside_each() -> None:
    spec = spec_of(NeXtBlock(), torch.randn(2, 3, 8, 8))  # checked by construction inside
    # the stream's 16 channels: 4 GroupNorm groups move as blocks of 4, and each group's channels on their own
    assert spec["stem_norm.groups"].size == 4 and Axis("stem.weight", 0, 4) in spec["stem_norm.groups"].axes
    assert [spec[f"stem_norm.group{i}"].size for i in range(4)] == [4] * 4
    assert {Axis("stem.weight", 0, 1, 8), Axis("fc.weight", 1, 1, 8), Axis("expand.weight", 0, 1, 8)} <= set(spec["stem_norm.group2"].axes)
    # the grouped conv: its 4 groups move in and out together; its input channels are permuted alike in every
    # group (its weight's input axis is shared by all groups); each group's 3 outputs have a permutation of their own
    groups = spec["grouped.groups"]
    assert {Axis("reduce.weight", 0, 2), Axis("bn.running_var", 0, 2), Axis("grouped.weight", 0, 3), Axis("norm.weight", 0, 3),
            Axis("expand.weight", 1, 3)} <= set(groups.axes)
    assert spec["grouped.inputs"].size == 2 and {Axis("reduce.weight", 0, 1, 2 * i) for i in range(4)} | {
        Axis("grouped.weight", 1)} <= set(spec["grouped.inputs"].axes)
    assert set(spec["grouped.group1"].axes) == {Axis("grouped.weight", 0, 1, 3), Axis("grouped.bias", 0, 1, 3), Axis("norm.weight", 0, 1, 3),
                                                Axis("norm.bias", 0, 1, 3), Axis("expand.weight", 1, 1, 3)}


class FunctionalNorms(nn.Module):
    """BatchNorm and GroupNorm written as functions of the module's own parameters and buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 8, 3), nn.Linear(8, 2)
        self.scale, self.shift = nn.Parameter(torch.ones(8)), nn.Parameter(torch.zeros(8))
        self.register_buffer("mean", torch.zeros(8))
        self.register_buffer("var", torch.ones(8))

    def forward(self, x):
        h = F.batch_norm(self.conv(x), self.mean, self.var, self.scale, self.shift, False)
        return self.fc(F.group_norm(h, 2, self.scale, self.shift).mean((2, 3)))


def test_norms_written_as_functions_are_followed() -> None:
    spec = spec_of(FunctionalNorms())  # the shared scale and shift make both norms' channels one set of units
    entries = (("conv.weight", 0), ("conv.bias", 0), ("mean", 0), ("var", 0), ("scale", 0), ("shift", 0), ("fc.weight", 1))
    assert set(spec["group_norm.groups"].axes) == {Axis(e, d, 4) for e, d in entries}
    assert set(spec["group_norm.group1"].axes) == {Axis(e, d, 1, 4) for e, d in entries}


class Attention(nn.Module):
    """Separate q/k/v projections, attention written out (q @ kᵀ, softmax, @ v) at the top level."""

    def __init__(self, width: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.embed, self.heads = nn.Embedding(10, width), heads
        self.q, self.k, self.v, self.out = (nn.Linear(width, width) for _ in range(4))
        self.norm, self.head = nn.LayerNorm(width), nn.Linear(width, 10)

    def forward(self, tokens):
        x = self.embed(tokens)
        batch, length, width = x.shape
        q, k, v = (f(x).view(batch, length, self.heads, width // self.heads).transpose(1, 2) for f in (self.q, self.k, self.v))
        weights = ((q @ k.transpose(-2, -1)) * (width // self.heads) ** -0.5).softmax(-1)
        return self.head(self.norm(x + self.out((weights @ v).transpose(1, 2).reshape(batch, length, width))))


def test_attention_written_out_with_matrix_products_has_heads_and_head_dims() -> None:
    spec = spec_of(Attention())
    assert set(spec["q.heads"].axes) == {*(Axis(f"{p}.{e}", 0, 8) for p in "qkv" for e in ("weight", "bias")), Axis("out.weight", 1, 8)}
    assert set(spec["q.head1"].axes) == {Axis(f"{p}.{e}", 0, 1, 8) for p in "qk" for e in ("weight", "bias")}  # q and k rows alike
    assert set(spec["v.head3"].axes) == {Axis("v.weight", 0, 1, 24), Axis("v.bias", 0, 1, 24), Axis("out.weight", 1, 1, 24)}


class SwiGLU(nn.Module):
    """An MLP whose hidden layer is one projection chunked in two, gating each other; its read-out applied twice."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.down, self.square, self.out = nn.Linear(4, 12), nn.Linear(6, 5), nn.Linear(5, 5), nn.Linear(5, 2)

    def forward(self, x):
        value, gate = self.up(x).chunk(2, dim=-1)
        return self.out(self.square(torch.tanh(self.square(self.down(value * F.silu(gate))))))


def test_chunks_of_one_projection_are_slices_and_a_layer_called_twice_is_one_set_of_units() -> None:
    spec = spec_of(SwiGLU())
    assert set(spec["up"].axes) == {Axis("up.weight", 0), Axis("up.weight", 0, 1, 6), Axis("up.bias", 0), Axis("up.bias", 0, 1, 6),
                                    Axis("down.weight", 1)}  # value and gate rows: one permutation, as they multiply
    assert {Axis("square.weight", 0), Axis("square.weight", 1), Axis("down.weight", 0), Axis("out.weight", 1)} <= set(spec["stream0"].axes)


class TiedHead(nn.Module):
    """nanoGPT's tying: the read-out Linear's weight is the embedding's (two state-dict names, one tensor)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.mix, self.head = nn.Embedding(10, 6), nn.Linear(6, 6), nn.Linear(6, 10, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens):
        return self.head(torch.tanh(self.mix(self.embed(tokens))))


def test_a_tied_weight_is_one_entry_under_its_first_name() -> None:
    spec = derive(TiedHead(), torch.randint(0, 10, (2, 5)))
    assert [a.entry for g in spec.groups for a in g.axes if "head" in a.entry or "embed" in a.entry] == ["embed.weight"]


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


class Rotary(nn.Module):
    """Rotary-style halves of each head's dims swapped: a permutation inside a head would break the pairing."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.out = nn.Linear(16, 48), nn.Linear(16, 16)

    def forward(self, x):
        batch, length, width = x.shape
        q, k, v = self.qkv(x).split(16, -1)
        q, k, v = (t.view(batch, length, 4, 4).transpose(1, 2) for t in (q, k, v))
        q = torch.cat([-q[..., 2:], q[..., :2]], -1)
        return self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, length, width))


class StackedHeads(nn.Module):
    """timm's layout: the stacked projection reshaped to (batch, tokens, 3, heads, head dim) at once."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.out = nn.Linear(16, 48), nn.Linear(16, 16)

    def forward(self, x):
        batch, length, width = x.shape
        q, k, v = self.qkv(x).reshape(batch, length, 3, 4, 4).permute(2, 0, 3, 1, 4).unbind(0)
        return self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, length, width))


def test_what_the_derivation_cannot_follow_is_refused_naming_the_node() -> None:
    with pytest.raises(LandscapeError, match=r"GroupNormedCat: graph node norm \(call_module norm, in module norm\).*2 groups of "
                                             r"channels over a concatenation.*permutation_spec\(self\)"):
        spec_of(GroupNormedCat())
    with pytest.raises(LandscapeError, match=r"graph node roll \(call_function roll, in module <top>\).*register"):
        spec_of(Rolled())
    with pytest.raises(LandscapeError, match=r"Rotary: graph node getitem_\d \(call_function getitem, in module <top>\).*a slice of "
                                             r"\[2, 2\] units cuts the dimension inside attention heads.*permutation_spec"):
        spec_of(Rotary(), torch.randn(2, 5, 16))
    with pytest.raises(LandscapeError, match=r"graph node reshape \(call_method reshape, in module <top>\).*a reshape splits units in a way "
                                             r"the derivation does not follow \(\(2, 5, 48\) -> \(2, 5, 3, 4, 4\)\).*register"):
        spec_of(StackedHeads(), torch.randn(2, 5, 16))


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
