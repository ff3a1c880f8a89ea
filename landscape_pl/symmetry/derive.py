"""Finding an architecture's permutation spec: declared by the module, registered, or derived.

``spec_of(network)`` looks, in order, for
1. a ``permutation_spec(self) -> PermutationSpec`` method on the network (a user's own architecture);
2. a function registered for its class with ``register(cls, fn)`` (how ``ResNet`` is declared here,
   and how a user declares a spec for a class they cannot edit);
3. a plain sequential network — the module is an ``nn.Sequential`` or holds exactly one (e.g.
   ``self.layers``) whose forward is just that chain — derived from its layers: every Linear/Conv
   except the last opens a group (its weight rows and bias, the BatchNorm after it, the next
   weighted layer's input columns), activations, dropout and pooling pass units through, Flatten
   turns channels into blocks of H*W columns. The probe is the last BatchNorm/activation after the
   layer, before any pooling.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from landscape_pl.errors import LandscapeError
from landscape_pl.symmetry.spec import Axis, Group, PermutationSpec, Probe

SpecFunction = Callable[[nn.Module], PermutationSpec]
REGISTRY: dict[type, SpecFunction] = {}

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Identity)
PASS_THROUGH = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool2d,
)

HOW_TO_DECLARE = (
    "declare its spec: give the class a method `permutation_spec(self) -> landscape_pl.symmetry.PermutationSpec`, "
    "or call `landscape_pl.symmetry.register(YourClass, function_of_network_returning_spec)` before aligning "
    "(see the PermutationSpec docstring for an example)"
)


def register(cls: type, function: SpecFunction) -> None:
    """Declare the spec of ``cls`` (and its subclasses) as ``function(network)``."""
    REGISTRY[cls] = function


def spec_of(network: nn.Module) -> PermutationSpec:
    """The network's permutation spec, checked against its state dict."""
    if callable(getattr(network, "permutation_spec", None)):
        spec = network.permutation_spec()
    else:
        function = next((REGISTRY[c] for c in type(network).__mro__ if c in REGISTRY), None)
        spec = function(network) if function else derive_sequential(network)
    spec.check(network.state_dict(), type(network).__name__)
    return spec


def flatten_sequential(module: nn.Sequential, prefix: str) -> list[tuple[str, nn.Module]]:
    """(qualified name, layer) of a Sequential, nested Sequentials unrolled."""
    layers = []
    for name, child in module.named_children():
        if isinstance(child, nn.Sequential):
            layers += flatten_sequential(child, f"{prefix}{name}.")
        else:
            layers.append((f"{prefix}{name}", child))
    return layers


def sequential_body(network: nn.Module) -> tuple[nn.Sequential, str]:
    """The Sequential a network is, or the single one it holds with all its parameters."""
    if isinstance(network, nn.Sequential):
        return network, ""
    children = list(network.named_children())
    if len(children) == 1 and isinstance(children[0][1], nn.Sequential):
        return children[0][1], f"{children[0][0]}."
    raise LandscapeError(
        f"cannot derive a permutation spec for {type(network).__name__}: it is not a plain nn.Sequential "
        f"(children: {[n for n, _ in children]}); {HOW_TO_DECLARE}"
    )


def derive_sequential(network: nn.Module) -> PermutationSpec:
    """The spec of a plain chain of Linear/Conv/BatchNorm/activation/pooling/Flatten layers."""
    body, prefix = sequential_body(network)
    layers = flatten_sequential(body, prefix)
    weighted = [i for i, (_, m) in enumerate(layers) if isinstance(m, WEIGHTED)]
    groups: list[Group] = []
    axes: list[Axis] = []
    probe: str | None = None
    size = 0
    open_probe = False  # still inside the run of BN/activations after the weighted layer
    flattened = False
    for index, (name, module) in enumerate(layers):
        if isinstance(module, WEIGHTED):
            if getattr(module, "groups", 1) != 1:
                raise LandscapeError(f"cannot derive a permutation spec: {name} is a grouped convolution; {HOW_TO_DECLARE}")
            if axes:
                fan_in = module.weight.shape[1]
                block = fan_in // size if flattened else 1
                if block * size != fan_in:
                    raise LandscapeError(f"cannot derive a permutation spec: {name} takes {fan_in} inputs, not a multiple of {size} units; {HOW_TO_DECLARE}")
                axes.append(Axis(f"{name}.weight", 1, block))
                groups.append(Group(f"{name_of(axes[0])}", size, tuple(axes), (Probe(probe),)))
                axes = []
            flattened = False
            if index != weighted[-1]:
                size = module.weight.shape[0]
                axes = [Axis(f"{name}.weight", 0)] + ([Axis(f"{name}.bias", 0)] if module.bias is not None else [])
                probe, open_probe = name, True
        elif isinstance(module, NORMS):
            if axes:
                axes += [Axis(f"{name}.{entry}", 0) for entry in ("weight", "bias") if getattr(module, entry) is not None]
                if module.track_running_stats:
                    axes += [Axis(f"{name}.running_mean", 0), Axis(f"{name}.running_var", 0)]
                if open_probe:
                    probe = name
        elif isinstance(module, ELEMENTWISE):
            if open_probe:
                probe = name
        elif isinstance(module, PASS_THROUGH):
            open_probe = False
        elif isinstance(module, nn.Flatten):
            open_probe, flattened = False, True
        else:
            raise LandscapeError(
                f"cannot derive a permutation spec for {type(network).__name__}: layer {name} "
                f"({type(module).__name__}) is not one the derivation knows; {HOW_TO_DECLARE}"
            )
    return PermutationSpec(tuple(groups))


def name_of(axis: Axis) -> str:
    """A group is named after the layer that opens it (``layers.0`` for ``layers.0.weight``)."""
    return axis.entry.rsplit(".", 1)[0]


def resnet_spec(network: nn.Module) -> PermutationSpec:
    """CIFAR ResNet (landscape_pl.models.ResNet): one group per block's inner layer, one per residual stream.

    Everything added onto one stream shares its permutation: the stem, each block's second conv/BN,
    and a projection shortcut opens a new stream (appendix E). Inner layers are probed at the input of
    the block's conv2 (post-ReLU); streams at the stem ReLU and at every block output, averaged.
    """
    def bn(name: str) -> list[Axis]:
        return [Axis(f"{name}.{e}", 0) for e in ("weight", "bias", "running_mean", "running_var")]

    groups: list[Group] = []
    streams = 0
    stream_axes = [Axis("conv1.weight", 0), *bn("bn1")]
    stream_probes = [Probe("relu")]
    width = network.conv1.weight.shape[0]
    for index, block in enumerate(network.blocks):
        name = f"blocks.{index}"
        if len(block.shortcut):  # a projection: the old stream ends at the block's input
            groups.append(Group(f"stream{streams}", width, (*stream_axes, Axis(f"{name}.conv1.weight", 1),
                                                             Axis(f"{name}.shortcut.0.weight", 1)), tuple(stream_probes)))
            streams += 1
            width = block.conv2.weight.shape[0]
            stream_axes = [Axis(f"{name}.shortcut.0.weight", 0), *bn(f"{name}.shortcut.1")]
            stream_probes = []
        else:
            stream_axes.append(Axis(f"{name}.conv1.weight", 1))
        inner = block.conv1.weight.shape[0]
        groups.append(Group(f"{name}.conv1", inner, (Axis(f"{name}.conv1.weight", 0), *bn(f"{name}.bn1"), Axis(f"{name}.conv2.weight", 1)),
                            (Probe(f"{name}.conv2", input=True),)))
        stream_axes += [Axis(f"{name}.conv2.weight", 0), *bn(f"{name}.bn2")]
        stream_probes.append(Probe(name))
    groups.append(Group(f"stream{streams}", width, (*stream_axes, Axis("fc.weight", 1)), tuple(stream_probes)))
    return PermutationSpec(tuple(sorted(groups, key=lambda g: forward_order(g, network))))


def forward_order(group: Group, network: nn.Module) -> int:
    """Position of the group's first probe among the network's modules (streams by their first layer)."""
    names = [n for n, _ in network.named_modules()]
    return min(names.index(p.module) for p in group.probes)


def _register_builtin() -> None:
    from landscape_pl.models.resnet import ResNet

    register(ResNet, resnet_spec)


_register_builtin()
