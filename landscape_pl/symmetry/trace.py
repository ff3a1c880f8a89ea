"""Deriving a permutation spec from the traced graph of any network ``torch.fx`` can trace.

The network is traced (``torch.fx``) and run once on an example input. For every tensor, each of
its dimensions gets a *layout*: what the entries along it index. A layout is a list of segments
``(space, block)`` (``block`` consecutive entries per unit of ``space``; several segments after a
concatenation), a ``ParamDim`` (a dimension of a parameter or buffer not yet met by units), or
``OPAQUE`` (a parameter dimension reshaped out of recognition). Spaces live in a union-find:
every operation that needs two dimensions to index the same units (a residual addition, a gate,
a layer's input columns against its input) merges them, and a parameter dimension that meets a
space records an ``Axis`` on it. Positions, the batch, constants, the input and the outputs are
*pinned* spaces: never permuted. Every space that a layer created (a Linear/Conv's output units,
an embedding, an attention block's heads) and that ends unpinned is a group.

Anything the derivation cannot follow raises, naming the graph node, instead of guessing.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode

from landscape_pl.errors import LandscapeError
from landscape_pl.symmetry.spec import Axis, Group, PermutationSpec, Probe

HOW_TO_DECLARE = (
    "declare its spec instead: give the class a method `permutation_spec(self) -> landscape_pl.symmetry.PermutationSpec`, "
    "or call `landscape_pl.symmetry.register(YourClass, function_of_network_returning_spec)` before aligning "
    "(see the PermutationSpec docstring for an example)"
)


@dataclass(frozen=True)
class ParamDim:
    """Dimension ``dim`` of state entry ``entry``, not yet tied to any units."""

    entry: str
    dim: int


OPAQUE = "opaque"
Segments = tuple[tuple[int, int], ...]
Layout = Segments | ParamDim | str
Annotation = tuple[Layout, ...]

NONLINEAR_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus,
                     nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Mish, nn.PReLU)
NONLINEAR_NAMES = {"relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid", "softplus", "hardtanh",
                   "hardswish", "hardsigmoid", "mish", "relu_", "sigmoid_", "tanh_"}
PASS_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Softmax, nn.LogSoftmax, nn.AlphaDropout)
PASS_NAMES = {"dropout", "softmax", "log_softmax", "contiguous", "clone", "detach", "float", "double", "to", "type_as",
              "alpha_dropout", "dropout1d", "dropout2d", "stochastic_depth"}
BINARY_NAMES = {"add", "sub", "mul", "div", "truediv", "add_", "mul_", "iadd", "imul", "sub_", "div_"}
POOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d,
                nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
POOL_NAMES = {"max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
              "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool2d"}
REDUCE_NAMES = {"mean", "sum", "amax", "amin"}
RESHAPE_NAMES = {"view", "reshape", "flatten", "unflatten"}
NORM_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)


class Spaces:
    """Union-find over unit spaces: size, pinned, the axes recorded on each, the layers that created it."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.pinned: list[bool] = []
        self.axes: list[list[tuple[int, Axis]]] = []
        self.producers: list[list[str]] = []
        self.recorded = 0

    def new(self, size: int, pinned: bool = False, producer: str | None = None) -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.pinned.append(pinned)
        self.axes.append([])
        self.producers.append([producer] if producer else [])
        return len(self.parent) - 1

    def find(self, s: int) -> int:
        while self.parent[s] != s:
            self.parent[s] = self.parent[self.parent[s]]
            s = self.parent[s]
        return s

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.size[a] != self.size[b]:
            raise ValueError(f"{self.size[a]} units against {self.size[b]}")
        a, b = min(a, b), max(a, b)  # the older space stays the root: groups keep forward order
        self.parent[b] = a
        self.pinned[a] = self.pinned[a] or self.pinned[b]
        self.axes[a] += self.axes[b]
        self.producers[a] += self.producers[b]

    def record(self, s: int, axis: Axis) -> None:
        self.recorded += 1
        self.axes[self.find(s)].append((self.recorded, axis))

    def pin(self, s: int) -> None:
        self.pinned[self.find(s)] = True


class Refused(Exception):
    """An operation the derivation cannot follow (the interpreter adds the node)."""


class Derivation(fx.Interpreter):
    """Runs the traced network on the example, annotating every tensor with its dims' layouts."""

    def __init__(self, graph: fx.GraphModule, outputs_of: dict[fx.Node, str]) -> None:
        super().__init__(graph)
        self.extra_traceback = False  # our refusals name the node already; fx's addition is a raw graph dump
        self.spaces = Spaces()
        self.layout: dict[fx.Node, Any] = {}
        self.outputs_of = outputs_of
        self.modules = dict(graph.named_modules())

    # layouts -------------------------------------------------------------------------------
    def fresh(self, shape: Sequence[int]) -> Annotation:
        """Layouts of a tensor with nothing permutable in it: every dim pinned."""
        return tuple(((self.spaces.new(n, pinned=True), 1),) for n in shape)

    def length(self, layout: Layout) -> int:
        return sum(self.spaces.size[self.spaces.find(s)] * b for s, b in layout)

    def pinned(self, layout: Layout) -> bool:
        return isinstance(layout, tuple) and all(self.spaces.pinned[self.spaces.find(s)] for s, _ in layout)

    def unify(self, a: Layout, b: Layout) -> Layout:
        """Make two dimensions index the same units; returns the merged layout."""
        if isinstance(a, ParamDim) and isinstance(b, ParamDim):
            if a == b:
                return a
            raise Refused(f"two parameter dimensions ({a.entry} dim {a.dim}, {b.entry} dim {b.dim}) meet before any units")
        if isinstance(a, ParamDim) or isinstance(b, ParamDim):
            param, other = (a, b) if isinstance(a, ParamDim) else (b, a)
            if other == OPAQUE:
                raise Refused(f"{param.entry} dim {param.dim} meets a dimension the derivation lost track of")
            offset = 0
            for s, block in other:
                self.spaces.record(s, Axis(param.entry, param.dim, block, offset))
                offset += self.spaces.size[self.spaces.find(s)] * block
            return other
        if a == OPAQUE or b == OPAQUE:
            other = b if a == OPAQUE else a
            if other != OPAQUE and not self.pinned(other):
                raise Refused("units meet a parameter dimension the derivation lost track of (reshaped)")
            return other
        if [blk for _, blk in a] == [blk for _, blk in b] and [self.spaces.size[self.spaces.find(s)] for s, _ in a] == [
            self.spaces.size[self.spaces.find(s)] for s, _ in b
        ]:
            for (s, _), (t, _) in zip(a, b):
                self.spaces.union(s, t)
            return a
        if self.pinned(a) or self.pinned(b):
            for s, _ in a + b:
                self.spaces.pin(s)
            return a
        raise Refused("two dimensions are made of different units (e.g. a concatenation added to one layer's output)")

    def broadcast(self, annotations: list[Annotation], shapes: list[Sequence[int]], out_shape: Sequence[int]) -> Annotation:
        """Elementwise over broadcast tensors: aligned dims (from the right) of size > 1 index the same units."""
        result: list[Layout] = []
        for k in range(1, len(out_shape) + 1):
            merged: Layout | None = None
            for annotation, shape in zip(annotations, shapes):
                if len(shape) >= k and shape[-k] == out_shape[-k]:
                    merged = annotation[-k] if merged is None else self.unify(merged, annotation[-k])
            if merged is None or isinstance(merged, ParamDim) or merged == OPAQUE:
                merged = self.fresh([out_shape[-k]])[0] if merged is None or merged == OPAQUE else merged
            result.append(merged)
        return tuple(reversed(result))

    def reshape(self, annotation: Annotation, shape: Sequence[int], out: Sequence[int]) -> Annotation:
        """Follow view/reshape/flatten: merged dims make blocks of the leading units dim, split-off dims are positions."""
        result: list[Layout] = []
        i = j = 0
        while i < len(shape) or j < len(out):
            gi, gj = [i], [j]
            a, b = (shape[i] if i < len(shape) else 1), (out[j] if j < len(out) else 1)
            while a != b:
                if a < b:
                    i += 1
                    gi.append(i)
                    a *= shape[i]
                else:
                    j += 1
                    gj.append(j)
                    b *= out[j]
            ins = [d for d in gi if d < len(shape)]
            outs = [d for d in gj if d < len(out)]
            i, j = i + 1, j + 1
            carrying = [d for d in ins if shape[d] > 1 and not self.pinned(annotation[d])]
            if not carrying:
                result += list(self.fresh([out[d] for d in outs]))
            elif len(ins) == 1 and len(outs) == 1:
                result.append(annotation[ins[0]])
            elif len(outs) == 1 and carrying == [next(d for d in ins if shape[d] > 1)] and isinstance(annotation[carrying[0]], tuple):
                inner = math.prod(shape[d] for d in ins if d > carrying[0])
                result.append(tuple((s, blk * inner) for s, blk in annotation[carrying[0]]))
            elif len(carrying) == 1 and isinstance(annotation[carrying[0]], ParamDim) and len(outs) == 1:
                result.append(OPAQUE)
            elif len(ins) == 1 and isinstance(annotation[ins[0]], tuple) and len(annotation[ins[0]]) == 1:
                (s, blk), = annotation[ins[0]]
                lead = next(d for d in outs if out[d] > 1)
                inner = math.prod(out[d] for d in outs if d > lead)
                if blk % inner or out[lead] * inner != self.length(annotation[ins[0]]):
                    raise Refused(f"a reshape splits units ({shape} -> {tuple(out)}), e.g. into attention heads")
                result += [((s, blk // inner),) if d == lead else self.fresh([out[d]])[0] for d in outs]
            else:
                raise Refused(f"a reshape mixes units with other dims ({tuple(shape)} -> {tuple(out)})")
        return tuple(result[: len(out)])

    def params(self, module: nn.Module, prefix: str, names: Sequence[str]) -> dict[str, Annotation | None]:
        """Layouts of a module's parameters and buffers, each dim a ParamDim."""
        result: dict[str, Annotation | None] = {}
        for name in names:
            value = getattr(module, name, None)
            result[name] = None if value is None else tuple(ParamDim(f"{prefix}{name}", d) for d in range(value.dim()))
        return result

    # the interpreter -----------------------------------------------------------------------
    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        try:
            self.layout[n] = self.annotate(n, value)
        except Refused as error:
            path = self.module_path(n)
            raise LandscapeError(
                f"cannot derive a permutation spec for {type(self.module).__name__}: graph node {n.name} ({n.op} {target_name(n)}, in module {path or '<top>'}) "
                f"cannot be followed: {error}; {HOW_TO_DECLARE}"
            ) from None
        except ValueError as error:
            raise LandscapeError(
                f"cannot derive a permutation spec for {type(self.module).__name__}: graph node {n.name} ({n.op} {target_name(n)}, in module "
                f"{self.module_path(n) or '<top>'}) ties {error}; {HOW_TO_DECLARE}"
            ) from None
        return value

    def module_path(self, n: fx.Node) -> str:
        if n.op == "call_module":
            return str(n.target)
        stack = n.meta.get("nn_module_stack") or {}
        return list(stack)[-1] if stack else ""

    def value(self, a: Any) -> Any:
        return self.env[a] if isinstance(a, fx.Node) else a

    def annotate(self, n: fx.Node, value: Any) -> Any:
        if n.op == "placeholder":
            return self.fresh(value.shape) if isinstance(value, torch.Tensor) else None
        if n.op == "get_attr":
            return tuple(ParamDim(str(n.target), d) for d in range(value.dim())) if isinstance(value, torch.Tensor) else None
        if n.op == "output":
            for node in n.all_input_nodes:
                self.pin_all(self.layout.get(node))
            return None
        tensors = [a for a in n.all_input_nodes if isinstance(self.layout.get(a), tuple) and isinstance(self.env.get(a), torch.Tensor)]
        if n.op == "call_module":
            return self.call_module_layout(n, self.modules[str(n.target)], value)
        name = target_name(n)
        if name == "getitem" and isinstance(self.value(n.args[0]), (tuple, list)):
            inner = self.layout.get(n.args[0])
            return inner[n.args[1]] if isinstance(inner, list) else None
        if name in ("cat", "concat"):
            return self.cat(n, value)
        if isinstance(value, torch.Size) or not isinstance(value, (torch.Tensor, tuple, list)):  # sizes, asserts: nothing to permute
            return None
        if not tensors:
            if isinstance(value, torch.Tensor):
                return self.fresh(value.shape)
            if isinstance(value, (tuple, list)) and all(isinstance(v, torch.Tensor) for v in value):
                return [self.fresh(v.shape) for v in value]
            return None
        return self.function_layout(n, name, value)

    def pin_all(self, annotation: Any) -> None:
        if isinstance(annotation, list):
            for a in annotation:
                self.pin_all(a)
        elif isinstance(annotation, tuple):
            for layout in annotation:
                if isinstance(layout, tuple):
                    for s, _ in layout:
                        self.spaces.pin(s)

    def first(self, n: fx.Node) -> tuple[Annotation, torch.Tensor]:
        return self.layout[n.args[0]], self.env[n.args[0]]

    def arg(self, n: fx.Node, index: int, key: str, default: Any = None) -> Any:
        if len(n.args) > index:
            return self.value(n.args[index])
        return self.value(n.kwargs.get(key, default))

    # modules -------------------------------------------------------------------------------
    def call_module_layout(self, n: fx.Node, m: nn.Module, value: Any) -> Any:
        path = f"{n.target}."
        if isinstance(m, (*NONLINEAR_MODULES, *PASS_MODULES)):
            if isinstance(m, nn.PReLU) and m.weight.numel() > 1:
                self.unify(ParamDim(f"{path}weight", 0), self.first(n)[0][1])
            return self.first(n)[0]
        if isinstance(m, nn.Linear):
            p = self.params(m, path, ("weight", "bias"))
            return self.linear(self.first(n)[0], p["weight"], p["bias"], str(n.target))
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            p = self.params(m, path, ("weight", "bias"))
            return self.conv(self.first(n)[0], value, p["weight"], p["bias"], m.groups, str(n.target))
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            x = self.first(n)[0]
            for layout in self.params(m, path, ("weight", "bias", "running_mean", "running_var")).values():
                if layout is not None:
                    self.unify(layout[0], x[1])
            return x
        if isinstance(m, nn.LayerNorm):
            p = self.params(m, path, ("weight", "bias"))
            return self.layer_norm(self.first(n)[0], len(m.normalized_shape), p["weight"], p["bias"])
        if isinstance(m, nn.GroupNorm):
            p = self.params(m, path, ("weight", "bias"))
            return self.group_norm(self.first(n)[0], self.env[n.args[0]], m.num_groups, p["weight"], p["bias"])
        if isinstance(m, nn.Embedding):
            return self.embedding(self.first(n)[0], self.params(m, path, ("weight",))["weight"], str(n.target))
        if isinstance(m, POOL_MODULES):
            return self.pool(self.first(n)[0], value)
        if isinstance(m, nn.Flatten):
            return self.reshape(self.first(n)[0], self.env[n.args[0]].shape, value.shape)
        if isinstance(m, nn.MultiheadAttention):
            return self.attention(n, m, value)
        raise Refused(f"the module {type(m).__name__} is not one the derivation knows")

    def linear(self, x: Annotation, weight: Annotation, bias: Annotation | None, producer: str) -> Annotation:
        self.unify(weight[1], x[-1])
        out = self.produce(weight[0], bias, producer)
        return (*x[:-1], out)

    def produce(self, rows: Layout, bias: Annotation | None, producer: str) -> Layout:
        """A layer's output units: a new space its weight rows (and bias) index."""
        if isinstance(rows, ParamDim):
            size = self.size_of(rows)
            layout: Layout = ((self.spaces.new(size, producer=producer), 1),)
            self.unify(rows, layout)
        else:
            layout = rows
        if bias is not None:
            self.unify(bias[0], layout)
        return layout

    def size_of(self, dim: ParamDim) -> int:
        owner, _, name = dim.entry.rpartition(".")
        return getattr(self.module.get_submodule(owner), name).shape[dim.dim]

    def conv(self, x: Annotation, value: torch.Tensor, weight: Annotation, bias: Annotation | None, groups: int, producer: str) -> Annotation:
        channels = self.length(x[1]) if isinstance(x[1], tuple) else -1
        if groups == 1:
            self.unify(weight[1], x[1])
            out = self.produce(weight[0], bias, producer)
        elif groups == channels and isinstance(x[1], tuple):  # depthwise: each input unit owns `multiplier` output channels
            multiplier = value.shape[1] // channels
            out = tuple((s, blk * multiplier) for s, blk in x[1])
            self.unify(weight[0], out)
            if bias is not None:
                self.unify(bias[0], out)
        else:
            raise Refused(f"a grouped convolution ({groups} groups of {channels} channels) only permits permutations within "
                          "and of whole groups, which the derivation does not derive")
        return (x[0], out, *self.fresh(value.shape[2:]))

    def layer_norm(self, x: Annotation, dims: int, weight: Annotation | None, bias: Annotation | None) -> Annotation:
        for param in (weight, bias):
            for k in range(dims) if param is not None else ():
                self.unify(param[k], x[len(x) - dims + k])
        return x

    def group_norm(self, x: Annotation, value: torch.Tensor, groups: int, weight: Annotation | None, bias: Annotation | None) -> Annotation:
        if groups not in (1, value.shape[1]):
            raise Refused(f"GroupNorm with {groups} groups of {value.shape[1] // groups} channels only permits permutations "
                          "that keep each group's channels together, which the derivation does not derive")
        for param in (weight, bias):
            if param is not None:
                self.unify(param[0], x[1])
        return x

    def embedding(self, indices: Annotation, weight: Annotation, producer: str) -> Annotation:
        return (*indices, self.produce(weight[1], None, producer))

    def pool(self, x: Annotation, value: torch.Tensor) -> Annotation:
        return (x[0], x[1], *self.fresh(value.shape[2:]))

    def attention(self, n: fx.Node, m: nn.MultiheadAttention, value: Any) -> list:
        """Self-attention: the embedding is tied to its input; heads, per-head query/key and value dims are groups."""
        if not m._qkv_same_embed_dim or m.bias_k is not None or n.args[1:3] != (n.args[0], n.args[0]):
            raise Refused("only self-attention with one stacked in_proj (no bias_k/v, kdim = vdim = embed_dim) is derived")
        x = self.layout[n.args[0]]
        path, e, h = str(n.target), m.embed_dim, m.num_heads
        d = e // h
        self.unify(ParamDim(f"{path}.in_proj_weight", 1), x[-1])
        heads = self.spaces.new(h, producer=f"{path}.heads")
        rows = [(f"{path}.in_proj_weight", 0)] + ([(f"{path}.in_proj_bias", 0)] if m.in_proj_bias is not None else [])
        for entry, dim in rows:
            for part in range(3):
                self.spaces.record(heads, Axis(entry, dim, d, part * e))
        self.spaces.record(heads, Axis(f"{path}.out_proj.weight", 1, d))
        for head in range(h):
            for kind, parts in (("qk", (0, 1)), ("v", (2,))):
                space = self.spaces.new(d, producer=f"{path}.head{head}.{kind}")
                for entry, dim in rows:
                    for part in parts:
                        self.spaces.record(space, Axis(entry, dim, 1, part * e + head * d))
                if kind == "v":
                    self.spaces.record(space, Axis(f"{path}.out_proj.weight", 1, 1, head * d))
        bias = (ParamDim(f"{path}.out_proj.bias", 0),) if m.out_proj.bias is not None else None
        out = self.produce(ParamDim(f"{path}.out_proj.weight", 0), bias, f"{path}.out_proj")
        weights = self.fresh(value[1].shape) if isinstance(value[1], torch.Tensor) else None
        return [(*x[:-1], out), weights]

    # functions and methods -----------------------------------------------------------------
    def function_layout(self, n: fx.Node, name: str, value: Any) -> Any:
        x, xv = self.first(n) if isinstance(self.env.get(n.args[0]) if isinstance(n.args[0], fx.Node) else None, torch.Tensor) else (None, None)
        if name in NONLINEAR_NAMES or name in PASS_NAMES or name == "assert":
            return x
        if name in BINARY_NAMES:
            operands = [a for a in (*n.args, *n.kwargs.values()) if isinstance(a, fx.Node) and isinstance(self.env[a], torch.Tensor)]
            return self.broadcast([self.layout[a] for a in operands], [self.env[a].shape for a in operands], value.shape)
        if x is None:
            raise Refused("its first argument is not a tensor")
        if name in POOL_NAMES:
            return self.pool(x, value)
        if name in REDUCE_NAMES:
            dims = self.arg(n, 1, "dim")
            dims = range(xv.dim()) if dims is None else [dims] if isinstance(dims, int) else dims
            dims = {d % xv.dim() for d in dims}
            if self.arg(n, 2, "keepdim", False):
                return tuple(self.fresh([1])[0] if d in dims else x[d] for d in range(xv.dim()))
            return tuple(x[d] for d in range(xv.dim()) if d not in dims)
        if name in RESHAPE_NAMES:
            return self.reshape(x, xv.shape, value.shape)
        if name in ("transpose", "swapaxes"):
            a, b = (self.value(v) % xv.dim() for v in n.args[1:3])
            order = list(range(xv.dim()))
            order[a], order[b] = b, a
            return tuple(x[d] for d in order)
        if name == "permute":
            order = n.args[1] if len(n.args) == 2 and isinstance(n.args[1], (tuple, list)) else n.args[1:]
            return tuple(x[self.value(d) % xv.dim()] for d in order)
        if name in ("unsqueeze", "squeeze", "expand", "expand_as", "repeat") or (name == "getitem" and isinstance(xv, torch.Tensor)):
            return self.index_like(n, name, x, xv, value)
        if name == "linear":
            bias = n.args[2] if len(n.args) > 2 else n.kwargs.get("bias")
            return self.linear(x, self.layout[n.args[1]], self.layout.get(bias) if isinstance(bias, fx.Node) else None, str(n.args[1].target))
        if name == "layer_norm":
            weight, bias = (n.args[i] if len(n.args) > i else n.kwargs.get(k) for i, k in ((2, "weight"), (3, "bias")))
            return self.layer_norm(x, len(self.arg(n, 1, "normalized_shape")), self.layout.get(weight), self.layout.get(bias))
        raise Refused("the operation is not one the derivation knows")

    def index_like(self, n: fx.Node, name: str, x: Annotation, xv: torch.Tensor, value: torch.Tensor) -> Annotation:
        """unsqueeze/squeeze/expand/indexing: kept dims keep their layout, new or expanded ones are positions."""
        if name == "unsqueeze":
            d = self.value(n.args[1]) % value.dim()
            return (*x[:d], *self.fresh([1]), *x[d:])
        if name == "squeeze":
            return tuple(layout for layout, size in zip(x, xv.shape) if size != 1) if value.dim() < xv.dim() else x
        if name in ("expand", "expand_as", "repeat"):
            lead = value.dim() - xv.dim()
            return (*self.fresh(value.shape[:lead]), *(x[d] if xv.shape[d] == value.shape[lead + d] else self.fresh([value.shape[lead + d]])[0]
                                                      for d in range(xv.dim())))
        index = self.value(n.args[1])
        index = index if isinstance(index, tuple) else (index,)
        result: list[Layout] = []
        d = 0
        for item in index:
            if item is Ellipsis:
                skip = xv.dim() - sum(1 for i in index if i is not None and i is not Ellipsis)
                result += x[d:d + skip]
                d += skip
            elif item is None:
                result.append(self.fresh([1])[0])
            elif isinstance(item, int):
                d += 1
            elif isinstance(item, slice) and item == slice(None):
                result.append(x[d])
                d += 1
            elif isinstance(item, slice) and self.pinned(x[d]):
                result.append(self.fresh([value.shape[len(result)]])[0])
                d += 1
            else:
                raise Refused(f"indexing with {item!r} selects some units of a dimension")
        return (*result, *x[d:])

    def cat(self, n: fx.Node, value: torch.Tensor) -> Annotation:
        nodes = list(n.args[0]) if n.args else list(n.kwargs["tensors"])
        parts = [self.env[a] for a in nodes]
        dim = self.arg(n, 1, "dim", 0) % value.dim()
        layouts = [self.layout[a] for a in nodes]
        result: list[Layout] = []
        for d in range(value.dim()):
            if d != dim:
                merged = layouts[0][d]
                for layout in layouts[1:]:
                    merged = self.unify(merged, layout[d])
                result.append(merged)
                continue
            segments: list[tuple[int, int]] = []
            for layout, part in zip(layouts, parts):
                own = layout[d]
                if not isinstance(own, tuple):
                    own = self.fresh([part.shape[d]])[0]
                    self.unify(layout[d], own)
                segments += own
            result.append(tuple(segments))
        return tuple(result)


def target_name(n: fx.Node) -> str:
    target = n.target
    if isinstance(target, str):
        return target.rsplit(".", 1)[-1]
    return getattr(target, "__name__", str(target)).lstrip("_") if target is not operator.getitem else "getitem"


class RecordingTracer(fx.Tracer):
    """``symbolic_trace`` that also notes which graph node is the output of each composite module call."""

    def __init__(self) -> None:
        super().__init__()
        self.outputs_of: dict[fx.Node, str] = {}
        self.calls: dict[str, int] = {}

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        path = self.path_of_module(m)
        self.calls[path] = self.calls.get(path, 0) + 1
        result = super().call_module(m, forward, args, kwargs)
        if isinstance(result, fx.Proxy) and not self.is_leaf_module(m, path):
            self.outputs_of.setdefault(result.node, path)
        return result


def derive(network: nn.Module, example: torch.Tensor) -> PermutationSpec:
    """The permutation spec of ``network``, derived from its traced graph run on ``example``."""
    tracer = RecordingTracer()
    training = network.training
    network.eval()  # trace the evaluation path (no stochastic depth, dropout as identity)
    try:
        try:
            graph = fx.GraphModule(network, tracer.trace(network), class_name=type(network).__name__)
        except Exception as error:  # noqa: BLE001 - any tracing failure is reported the same way
            raise LandscapeError(
                f"cannot derive a permutation spec for {type(network).__name__}: torch.fx cannot trace it ({error}); {HOW_TO_DECLARE}"
            ) from None
        derivation = Derivation(graph, tracer.outputs_of)
        with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):  # shapes only: no arithmetic is done
            derivation.run(example)
    finally:
        network.train(training)
    return build(derivation, graph, tracer.calls)


NORM_NAMES = {"batch_norm", "layer_norm", "group_norm"}


def build(d: Derivation, graph: fx.GraphModule, calls: dict[str, int]) -> PermutationSpec:
    """Groups from the unpinned spaces that layers created, in forward order, with their probes."""
    spaces = d.spaces
    roots = sorted({spaces.find(s) for s in range(len(spaces.parent))})
    chosen = [r for r in roots if spaces.producers[r] and not spaces.pinned[r] and spaces.size[r] > 1 and spaces.axes[r]]
    probes = find_probes(d, graph, calls, set(chosen))
    groups: list[Group] = []
    streams = 0
    used: set[str] = set()
    for root in chosen:
        producers = list(dict.fromkeys(spaces.producers[root]))
        if len(producers) == 1:
            name = producers[0]
        else:
            name, streams = f"stream{streams}", streams + 1
        while name in used:
            name += "_"
        used.add(name)
        axes = tuple(dict.fromkeys(axis for _, axis in sorted(spaces.axes[root], key=lambda pair: pair[0])))
        groups.append(Group(name, spaces.size[root], axes, tuple(probes.get(root, ()))))
    return PermutationSpec(tuple(groups))


def find_probes(d: Derivation, graph: fx.GraphModule, calls: dict[str, int], chosen: set[int]) -> dict[int, list[Probe]]:
    """Per space, where its activations can be read: after a nonlinearity if any, else after a norm, else any output.

    Of a chain of nonlinearities/norms only the last is taken; a tensor is read as the output of
    the module that makes it, or of the composite module it ends, or as the input of the module
    that consumes it, each called once (a hook on a module called twice would see both calls).
    """
    kinds: dict[int, dict[int, list[tuple[fx.Node, int]]]] = {}
    for node in graph.graph.nodes:
        annotation = d.layout.get(node)
        if not isinstance(annotation, tuple) or node.op in ("placeholder", "get_attr"):
            continue
        kind = rank(d, node)
        for dim, layout in enumerate(annotation):
            if isinstance(layout, tuple) and len(layout) == 1 and layout[0][1] == 1:
                root = d.spaces.find(layout[0][0])
                if root in chosen:
                    kinds.setdefault(root, {}).setdefault(kind, []).append((node, dim))
    result: dict[int, list[Probe]] = {}
    for root, by_kind in kinds.items():
        for kind in sorted(by_kind, reverse=True):
            nodes = [(n, dim) for n, dim in by_kind[kind] if kind == 0 or not continues(d, n, root)]
            found = list(dict.fromkeys(p for p in (probe_of(d, n, dim, calls) for n, dim in nodes) if p is not None))
            if found:
                result[root] = found
                break
    return result


def rank(d: Derivation, node: fx.Node) -> int:
    """2 for a nonlinearity's output, 1 for a norm's, 0 otherwise."""
    if node.op == "call_module":
        module = d.modules[str(node.target)]
        return 2 if isinstance(module, NONLINEAR_MODULES) else 1 if isinstance(module, NORM_MODULES) else 0
    name = target_name(node)
    return 2 if name in NONLINEAR_NAMES else 1 if name in NORM_NAMES else 0


def continues(d: Derivation, node: fx.Node, root: int) -> bool:
    """The node's only user is another nonlinearity or norm on the same units: read that one instead."""
    users = list(node.users)
    return len(users) == 1 and rank(d, users[0]) > 0 and any(
        isinstance(layout, tuple) and any(d.spaces.find(s) == root for s, _ in layout) for layout in d.layout.get(users[0]) or ()
    )


def probe_of(d: Derivation, node: fx.Node, dim: int, calls: dict[str, int]) -> Probe | None:
    if node.op == "call_module" and calls.get(str(node.target)) == 1:
        return Probe(str(node.target), dim=dim)
    if node in d.outputs_of and calls.get(d.outputs_of[node]) == 1:
        return Probe(d.outputs_of[node], dim=dim)
    for user in node.users:
        if user.op == "call_module" and user.args and user.args[0] is node and calls.get(str(user.target)) == 1:
            return Probe(str(user.target), input=True, dim=dim)
    return None


def example_input(network: nn.Module) -> torch.Tensor:
    """A batch of 2 inputs shaped for the network's first layer: images of the first side it accepts.

    Sides tried: ``network.image_size`` if set, then 32, 28, 8, 16, 64, 224. Each is tried by a real forward pass:
    at these sizes it is faster than a FakeTensor one (whose cost per operation dominates).
    """
    first = next((m for m in network.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Embedding))), None)
    if isinstance(first, nn.Embedding):
        return torch.randint(0, first.num_embeddings, (2, 8))
    if isinstance(first, nn.Linear):
        return torch.randn(2, first.in_features)
    if first is None:
        raise LandscapeError(f"cannot guess an input for {type(network).__name__} (no Linear, Conv or Embedding): pass `example`")
    spatial = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}[type(first)]
    sides = [getattr(network, "image_size", None), 32, 28, 8, 16, 64, 224]
    training = network.training
    network.eval()
    try:
        for side in [s for s in sides if isinstance(s, int)]:
            example = torch.randn(2, first.in_channels, *[side] * spatial)
            try:
                with torch.no_grad():
                    network(example.to(next(network.parameters()).device))
                return example
            except Exception:  # noqa: BLE001, S112 - a side the network rejects: try the next
                continue
    finally:
        network.train(training)
    raise LandscapeError(f"cannot guess an input for {type(network).__name__} (tried image sides {sides[1:]}): pass `example`")
