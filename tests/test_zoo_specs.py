"""Every architecture of the project's zoo, and the large torchvision ones the issue lists, derives a spec
that passes the construction check; nothing in the zoo declares one by hand any more."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from landscape_pl.models import MLP, VGG16BN, ResNet, SimpleCNN, TinyNet, TinySix, TinyTen
from landscape_pl.symmetry import match_weights
from landscape_pl.symmetry.derive import checked_spec

ZOO = {  # name -> (constructor, a plain chain: one group per layer but the read-out)
    "mlp": (lambda: MLP(64, (32, 16)), True),
    "mlp_tanh_nobias": (lambda: MLP(64, (8,), activation="tanh", bias=False), True),
    "simple_cnn": (SimpleCNN, True),
    "tinynet": (TinyNet, True),
    "tinysix": (TinySix, True),
    "tinyten": (TinyTen, True),
    "vgg16bn": (VGG16BN, True),
    "resnet20": (ResNet, False),  # 3 residual streams and one group inside each of its 9 blocks
}


@pytest.mark.parametrize("name", list(ZOO))
def test_the_zoo_derives_checked_specs(name: str) -> None:
    torch.manual_seed(0)
    make, chain = ZOO[name]
    network = make()
    checked = checked_spec(network)
    assert checked.source == "derived" and 0 <= checked.change <= 1e-6
    layers = [n for n, m in network.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    expected = len(layers) - 1 if chain else 3 + 9
    assert len(checked.spec.groups) == expected and all(g.probes for g in checked.spec.groups)


@pytest.mark.parametrize("make", [torchvision.models.vgg11_bn, torchvision.models.resnet50])
def test_large_torchvision_networks_pass_the_check(make) -> None:
    torch.manual_seed(0)
    checked = checked_spec(make(num_classes=10))
    assert checked.source == "derived" and checked.change <= 1e-6 and all(g.probes for g in checked.spec.groups)


def test_weight_matching_runs_between_two_resnet50_initializations() -> None:
    """(vgg11_bn's is in bench/alignment.py: its 25088 x 4096 classifier makes one sweep ~1 TFLOP, too long for a test.)"""
    torch.manual_seed(0)
    net_a, net_b = torchvision.models.resnet50(num_classes=10), torchvision.models.resnet50(num_classes=10)
    spec = checked_spec(net_a).spec
    perms = match_weights(net_a.state_dict(), net_b.state_dict(), spec, max_sweeps=1)
    assert {n: sorted(p.tolist()) for n, p in perms.items()} == {g.name: list(range(g.size)) for g in spec.groups}
    assert sum(bool((p != torch.arange(len(p))).any()) for p in perms.values()) == len(spec.groups)  # random pairs: all move
