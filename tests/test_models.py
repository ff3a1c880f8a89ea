"""Architectures: the parameter counts of the alignment paper's Table 1, shapes, specs, seeds."""

from __future__ import annotations

import pytest
import torch

from landscape_pl.models import MLP, VGG16BN, ResNet, SimpleCNN, TinyNet, TinySix, TinyTen, build, describe
from landscape_pl.modules import EndpointModule


def parameters(network: torch.nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


@pytest.mark.parametrize(
    ("network", "count"),
    [
        (TinyTen(), 86_778),
        (VGG16BN(), 15_253_578),
        (ResNet(32), 466_906),
        # Table 1 says 34,596; "Tiny-10 less layers 2, 4, 5, 7" gives this (no reading found that gives 34,596).
        (TinySix(), 28_746),
        (MLP(784, (500,), 10), 784 * 500 + 500 + 5010),
        (MLP(1, (4, 4), 1, "sigmoid"), 8 + 20 + 5),
        (MLP(2, (3,), 2), 12 + 3 + 2),
        (MLP(2, (3,), 2, bias=False), 12),
    ],
    ids=["TinyTen", "VGG16BN", "ResNet32", "TinySix", "MLP784-500-10", "MLP1-4-4-1", "MLP2-3-2", "MLP2-3-2-nobias"],
)
def test_parameter_counts(network, count):
    assert parameters(network) == count


def test_resnet_depths_and_projection_shortcuts():
    assert parameters(ResNet(20)) == 272_474  # He et al.'s 0.27M, with the two projection shortcuts
    net = ResNet(32)
    projections = [n for n, m in net.named_modules() if n.endswith("shortcut") and len(m)]
    assert projections == ["blocks.5.shortcut", "blocks.10.shortcut"]
    with pytest.raises(ValueError, match="6n\\+2"):
        ResNet(21)


@pytest.mark.parametrize(
    ("network", "shape", "outputs"),
    [
        (TinyTen(), (2, 3, 32, 32), 10),
        (TinySix(), (2, 3, 32, 32), 10),
        (VGG16BN(), (2, 3, 32, 32), 10),
        (ResNet(20), (2, 3, 32, 32), 10),
        (TinyTen(in_channels=1), (2, 1, 28, 28), 10),
        (SimpleCNN(), (2, 1, 28, 28), 10),
        (SimpleCNN(1, 8, (16, 32), 64), (2, 1, 8, 8), 10),
        (TinyNet(((8, 3, 1, 1), (16, 3, 2, 1)), 1), (2, 1, 8, 8), 10),
        (MLP(), (2, 64), 10),
        (MLP(784, (500,), 10), (2, 1, 28, 28), 10),
        (MLP(1, (4, 4), 1, "sigmoid"), (2, 1), 1),
        (MLP(2, (3,), 2), (3, 2), 2),
    ],
    ids=["TinyTen", "TinySix", "VGG16BN", "ResNet20", "TinyTen-mnist", "SimpleCNN", "SimpleCNN-digits",
         "TinyNet-digits", "MLP", "MLP-mnist", "MLP-poly", "MLP-perm"],
)
def test_forward_shapes(network, shape, outputs):
    network.eval()
    with torch.no_grad():
        assert network(torch.randn(shape)).shape == (shape[0], outputs)


def test_tiny_ten_layers_are_kornbliths():
    convs = [m for m in TinyTen().modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == [
        (16, 3, 1, 1), (16, 3, 1, 1), (32, 3, 2, 1), (32, 3, 1, 1), (32, 3, 1, 1), (64, 3, 2, 1), (64, 3, 1, 0), (64, 1, 1, 0)]
    assert all(c.bias is not None for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in TinyTen().modules()) == 8


@pytest.mark.parametrize("network", [TinySix(num_outputs=100), ResNet(20, width=8), MLP(64, (32, 16), 10, "tanh", False)])
def test_spec_rebuilds_the_same_architecture(network):
    spec = describe(network)
    rebuilt = build(spec)
    assert type(rebuilt) is type(network)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in network.state_dict().items()}


def test_unknown_activation_and_class_path_are_named():
    with pytest.raises(ValueError, match="'swish'.*relu"):
        MLP(activation="swish")
    with pytest.raises(ValueError, match="landscape_pl.models.Nope"):
        build({"class_path": "landscape_pl.models.Nope"})


def endpoint(init_seed: int, global_seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(global_seed)
    return EndpointModule({"class_path": "landscape_pl.models.MLP", "init_args": {"widths": [16]}}, init_seed=init_seed).state_dict()


def test_init_seed_alone_decides_initialization():
    same = endpoint(3, 0), endpoint(3, 99)
    assert all(torch.equal(same[0][k], same[1][k]) for k in same[0])
    other = endpoint(4, 0)
    assert all(not torch.equal(same[0][k], other[k]) for k in other)


def test_kaiming_init_keeps_the_signal_scale_through_a_deep_relu_mlp():
    """He init: weights ~ N(0, 2 / fan_in), zero biases, so a 10-layer ReLU MLP's last hidden layer keeps its
    input's mean square (to sampling error) where PyTorch's default init shrinks it about 3x per layer."""
    torch.manual_seed(0)
    x = torch.randn(4096, 64)

    def last_hidden_mean_square(network: MLP) -> float:
        with torch.no_grad():
            return float(network.layers[:-1](x).pow(2).mean())

    kaiming, default = MLP(64, [512] * 10, init="kaiming"), MLP(64, [512] * 10)
    first = kaiming.layers[1]
    assert float(first.weight.detach().var()) == pytest.approx(2 / 64, rel=0.02)
    assert torch.equal(first.bias, torch.zeros_like(first.bias))
    assert 0.5 < last_hidden_mean_square(kaiming) < 2.0
    assert last_hidden_mean_square(default) < 1e-3
    tanh = MLP(64, [512], activation="tanh", init="kaiming").layers[1]
    assert float(tanh.weight.detach().var()) == pytest.approx((5 / 3) ** 2 / 64, rel=0.02)  # tanh's gain, 5/3
    with pytest.raises(ValueError, match="'xavier'.*kaiming"):
        MLP(init="xavier")


def test_kaiming_init_survives_init_seed():
    """EndpointModule's init_seed resets every layer, then the network's own initialize(): the draw is He's,
    decided by init_seed alone."""
    spec = {"class_path": "landscape_pl.models.MLP", "init_args": {"widths": [256, 256], "init": "kaiming"}}
    one, two = (EndpointModule(spec, init_seed=5).network for _ in range(2))
    hidden = one.layers[3]
    assert torch.equal(hidden.bias, torch.zeros_like(hidden.bias))
    assert float(hidden.weight.detach().var()) == pytest.approx(2 / 256, rel=0.05)
    assert all(torch.equal(a, b) for a, b in zip(one.state_dict().values(), two.state_dict().values()))
