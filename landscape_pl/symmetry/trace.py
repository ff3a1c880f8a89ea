"""Deriving a permutation spec from the traced graph of any network ``torch.fx`` can trace.

The network is traced (``torch.fx``) and run once on (at most two items of) an example input, for
real: a FakeTensor run would do no arithmetic but costs ten times more per operation (1.2 s against
0.12 s on resnet50, most of it in BatchNorm's decomposition). For every tensor, each of
its dimensions gets a *layout*: what the entries along it index. A layout is a list of segments
``(space, block)`` (``block`` consecutive entries per unit of ``space``; several segments after a
concatenation), a ``ParamDim`` (a dimension of a parameter or buffer not yet met by units), or
``OPAQUE`` (a parameter dimension reshaped out of recognition). Spaces live in a union-find:
every operation that needs two dimensions to index the same units (a residual addition, a gate,
a layer's input columns against its input) merges them, and a parameter dimension that meets a
space records an ``Axis`` on it. Positions, the batch, constants, the input and the outputs are
*pinned* spaces: never permuted. Every space that a layer created (a Linear/Conv's output units,
an embedding, an attention block's heads) and that ends unpinned is a group. A space can be
structured (``Spaces``): slices of it split apart (a stacked query/key/value projection), or equal
blocks (attention heads, GroupNorm groups, the groups of a grouped convolution) that move as wholes,
with the units inside each block a space of their own.

Anything the derivation cannot follow raises, naming the graph node, instead of guessing.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import torch
from torch import fx, nn

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
SPLIT_NAMES = {"split", "chunk", "tensor_split", "split_with_sizes"}
MATMUL_NAMES = {"matmul", "bmm"}
NORM_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)


class Refused(Exception):
    """An operation the derivation cannot follow (the interpreter adds the node)."""


class Spaces:
    """Union-find over unit spaces: size, pinned, the axes recorded on each, the layers that created it.

    A space can be *structured*, which restricts its permutations to those of its components:
    ``("concat", parts)``: consecutive slices, each its own space (the query/key/value rows of one
    stacked projection, split apart); ``("nest", heads, inners, within)``: ``heads`` blocks of equal
    size, permuted as wholes, and inside block i the units of ``inners[i]`` (attention heads, the
    groups of a GroupNorm or a grouped convolution); ``("within", nest)``: the per-head dimension of
    a tensor whose heads are on another dimension (``q.view(B, T, h, d)``'s last one). Axes recorded
    on a structured space are handed to its components when the spec is built; a structured space
    is never a group itself.
    """

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.pinned: list[bool] = []
        self.axes: list[list[tuple[int, Axis]]] = []
        self.producers: list[list[str]] = []
        self.label: dict[int, str] = {}
        self.kind: dict[int, tuple] = {}
        self.heads: list[int] = []
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
        self.axes[a] += self.axes[b]
        self.producers[a] += self.producers[b]
        if b in self.label:
            self.label.setdefault(a, self.label[b])
        kinds = self.kind.get(a), self.kind.get(b)
        if kinds[0] is None and kinds[1] is not None:
            self.kind[a] = kinds[1]
        elif kinds[0] is not None and kinds[1] is not None:
            self.merge(*kinds)
        if self.pinned[a] or self.pinned[b]:
            self.pin(a)

    def merge(self, a: tuple, b: tuple) -> None:
        """The components of two structured spaces that became one are the same units."""
        if a[0] != b[0] or (a[0] == "concat" and [self.size[p] for p in a[1]] != [self.size[p] for p in b[1]]):
            raise Refused(f"the same units are structured in two ways ({described(self, a)} and {described(self, b)})")
        if a[0] == "concat":
            for p, q in zip(a[1], b[1]):
                self.union(p, q)
        elif a[0] == "nest":
            self.union(a[1], b[1])
            for p, q in zip(a[2], b[2]):
                self.union(p, q)
            self.union(a[3], b[3])
        else:
            self.union(a[1], b[1])

    def components(self, r: int) -> list[int]:
        kind = self.kind.get(r)
        if kind is None:
            return []
        if kind[0] == "concat":
            return list(kind[1])
        if kind[0] == "nest":
            return [kind[1], *kind[2], kind[3]]
        return list(self.kind[self.find(kind[1])][2])

    def record(self, s: int, axis: Axis) -> None:
        self.recorded += 1
        self.axes[self.shared(s)].append((self.recorded, axis))

    def shared(self, s: int) -> int:
        """A per-head dimension that a parameter meets is permuted alike in every head: unify them; the root to record on."""
        r = self.find(s)
        if self.kind.get(r, ("",))[0] != "within":
            return r
        inners = self.kind[self.find(self.kind[r][1])][2]
        for inner in inners[1:]:
            self.union(inners[0], inner)
        return self.find(r)

    def pin(self, s: int) -> None:
        r = self.find(s)
        self.pinned[r] = True
        for c in self.components(r):
            if not self.pinned[self.find(c)]:
                self.pin(c)

    def is_pinned(self, s: int) -> bool:
        r = self.find(s)
        if self.pinned[r]:
            return True
        kind = self.kind.get(r)
        if kind is None:
            return False
        parts = [c for c in self.components(r) if kind[0] != "nest" or c != kind[3]]
        return all(self.is_pinned(c) for c in parts)

    def structure(self, s: int, kind: tuple) -> None:
        """Make plain space ``s`` structured (its components are new spaces, pinned if it is)."""
        r = self.find(s)
        self.kind[r] = kind
        if self.pinned[r]:
            self.pin(r)

    def nest(self, s: int, heads: int, names: tuple[str, str]) -> int:
        """Space ``s`` as ``heads`` equal blocks (reusing its structure if it has that one); returns its root."""
        r = self.find(s)
        kind = self.kind.get(r)
        if kind is not None:
            if kind[0] != "nest" or self.size[self.find(kind[1])] != heads:
                raise Refused(f"{self.size[r]} units are split into {heads} blocks but are already {described(self, kind)}")
            return r
        if self.size[r] % heads:
            raise Refused(f"{self.size[r]} units cannot be split into {heads} equal blocks")
        inner = self.size[r] // heads
        h = self.new(heads, producer=names[0])
        self.heads.append(h)
        inners = [self.new(inner, producer=names[1].format(i)) for i in range(heads)]
        for space in (h, *inners):  # a name that survives merging with the other nests of these units (q's with k's)
            self.label[space] = self.producers[space][0]
        within = self.new(inner)
        self.kind[within] = ("within", r)
        self.structure(r, ("nest", h, inners, within))
        return r

    def cut(self, s: int, sizes: list[int]) -> list[int]:
        """Space ``s`` as consecutive slices of ``sizes`` units: its parts (existing ones if it is cut so already)."""
        r = self.find(s)
        kind = self.kind.get(r)
        if kind is not None:
            if kind[0] == "concat" and [self.size[self.find(p)] for p in kind[1]] == sizes:
                return list(kind[1])
            raise Refused(f"a slice of {sizes} units cuts {described(self, kind)}")
        parts = [self.new(n) for n in sizes]
        for p in parts:
            self.producers[p] = list(self.producers[r])
        self.structure(r, ("concat", parts))
        return parts

    def leaves(self, s: int, axis: Axis) -> list[tuple[int, Axis]]:
        """The plain spaces an axis recorded on ``s`` acts on, with their own axes (offsets, blocks)."""
        r = self.find(s)
        kind = self.kind.get(r)
        if kind is None:
            return [(r, axis)]
        result = []
        if kind[0] == "concat":
            offset = axis.offset
            for p in kind[1]:
                result += self.leaves(p, Axis(axis.entry, axis.dim, axis.block, offset))
                offset += self.size[self.find(p)] * axis.block
        elif kind[0] == "nest":
            inner = self.size[self.find(kind[2][0])]
            result += self.leaves(kind[1], Axis(axis.entry, axis.dim, axis.block * inner, axis.offset))
            for i, p in enumerate(kind[2]):
                result += self.leaves(p, Axis(axis.entry, axis.dim, axis.block, axis.offset + i * inner * axis.block))
        else:
            result += self.leaves(self.kind[self.find(kind[1])][2][0], axis)
        return result


def described(spaces: Spaces, kind: tuple) -> str:
    """A structure in words, for refusals."""
    if kind[0] == "concat":
        return f"slices of {[spaces.size[spaces.find(p)] for p in kind[1]]} units"
    if kind[0] == "nest":
        return f"{spaces.size[spaces.find(kind[1])]} blocks of {spaces.size[spaces.find(kind[2][0])]} units"
    return "the dimension inside attention heads"


class Derivation(fx.Interpreter):
    """Runs the traced network on the example, annotating every tensor with its dims' layouts."""

    def __init__(self, graph: fx.GraphModule, outputs_of: dict[fx.Node, str], state: dict[str, torch.Tensor]) -> None:
        super().__init__(graph)
        self.extra_traceback = False  # our refusals name the node already; fx's addition is a raw graph dump
        self.spaces = Spaces()
        self.layout: dict[fx.Node, Any] = {}
        self.outputs_of = outputs_of
        self.modules = dict(graph.named_modules())
        self.names: dict[int, str] = {}  # id of a parameter or buffer -> its state-dict name (the first one, for a tied tensor)
        for name, tensor in state.items():
            self.names.setdefault(id(tensor), name)
        self.shapes = {name: tensor.shape for name, tensor in state.items()}
        self.bound: dict[ParamDim, Layout] = {}  # a parameter dimension met by units is those units from then on

    # layouts -------------------------------------------------------------------------------
    def fresh(self, shape: Sequence[int]) -> Annotation:
        """Layouts of a tensor with nothing permutable in it: every dim pinned."""
        return tuple(((self.spaces.new(n, pinned=True), 1),) for n in shape)

    def length(self, layout: Layout) -> int:
        return sum(self.spaces.size[self.spaces.find(s)] * b for s, b in layout)

    def pinned(self, layout: Layout) -> bool:
        return isinstance(layout, tuple) and all(self.spaces.is_pinned(s) for s, _ in layout)

    def expand(self, layout: Segments) -> Segments:
        """The segments of ``layout`` with sliced (concat) spaces replaced by their parts."""
        result: list[tuple[int, int]] = []
        for s, block in layout:
            r = self.spaces.find(s)
            kind = self.spaces.kind.get(r)
            result += self.expand(tuple((p, block) for p in kind[1])) if kind and kind[0] == "concat" else [(r, block)]
        return tuple(result)

    def bounds(self, layout: Segments) -> list[int]:
        """Where each segment of ``layout`` starts, and where the last one ends, in entries."""
        ends = [0]
        for s, block in layout:
            ends.append(ends[-1] + self.spaces.size[self.spaces.find(s)] * block)
        return ends

    def cut(self, layout: Segments, positions: set[int]) -> Segments:
        """``layout`` with a segment boundary at every entry position in ``positions`` (slicing spaces as needed)."""
        result: list[tuple[int, int]] = []
        layout = self.expand(layout)
        ends = self.bounds(layout)
        for (s, block), (start, stop) in zip(layout, pairwise(ends)):
            inside = sorted(p - start for p in positions if start < p < stop)
            if not inside:
                result.append((s, block))
                continue
            if any(p % block for p in inside):
                raise Refused(f"a slice cuts through the {block} entries of one unit")
            units = [0, *(p // block for p in inside), self.spaces.size[s]]
            result += [(p, block) for p in self.spaces.cut(s, [b - a for a, b in pairwise(units)])]
        return tuple(result)

    def pieces(self, layout: Layout, sizes: list[int]) -> list[Layout]:
        """``layout`` split into consecutive pieces of ``sizes`` entries (a split, chunk or slice along it)."""
        if not isinstance(layout, tuple):
            raise Refused("a parameter dimension is split (declare the pieces as parameters of their own)")
        if self.pinned(layout):
            return [self.fresh([n])[0] for n in sizes]
        ends = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        layout = self.cut(layout, set(ends))
        starts = self.bounds(layout)
        return [tuple(seg for seg, at in zip(layout, starts) if a <= at < b) for a, b in pairwise(ends)]

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
            if param in self.bound:  # a shared (tied) parameter, or a layer called twice: both sides are the same units
                return self.unify(self.bound[param], other)
            self.bound[param] = other
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
        pairs = self.matching(a, b)
        if pairs is None and not (self.pinned(a) or self.pinned(b)) and self.length(a) == self.length(b):
            ends = set(self.bounds(self.expand(a))) | set(self.bounds(self.expand(b)))  # slice both alike
            a, b = self.cut(a, ends), self.cut(b, ends)
            pairs = self.matching(a, b)
        if pairs is not None:
            for s, t in pairs:
                self.spaces.union(s, t)
            return a
        if self.pinned(a) or self.pinned(b):
            for s, _ in a + b:
                self.spaces.pin(s)
            return a
        raise Refused("two dimensions are made of different units (e.g. a concatenation added to one layer's output)")

    def matching(self, a: Segments, b: Segments) -> list[tuple[int, int]] | None:
        """The spaces of two layouts that must be the same units, if their segments match (as given, or sliced into parts)."""
        for x, y in ((a, b), (self.expand(a), self.expand(b))):
            if [blk for _, blk in x] == [blk for _, blk in y] and [self.spaces.size[self.spaces.find(s)] for s, _ in x] == [
                self.spaces.size[self.spaces.find(s)] for s, _ in y
            ]:
                return [(s, t) for (s, _), (t, _) in zip(x, y)]
        return None

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
                result += self.split_units(annotation[ins[0]][0], [out[d] for d in outs], shape, out)
            elif len(outs) == 1 and len(carrying) == 2 and carrying[1] == carrying[0] + 1 and (
                    nest := self.heads_and_within(annotation[carrying[0]], annotation[carrying[1]])) is not None:
                result.append(((nest, math.prod(shape[d] for d in ins if d > carrying[1])),))
            else:
                raise Refused(f"a reshape mixes units with other dims ({tuple(shape)} -> {tuple(out)})")
        return tuple(result[: len(out)])

    def split_units(self, segment: tuple[int, int], sizes: list[int], shape: Sequence[int], out: Sequence[int]) -> list[Layout]:
        """One dim of units reshaped into ``sizes``: a block split off as positions, or heads and the dims inside each head."""
        s, blk = segment
        big = [i for i, n in enumerate(sizes) if n > 1]
        inner = math.prod(sizes[big[0] + 1:])
        if blk % inner == 0 and sizes[big[0]] * inner == self.length((segment,)):  # (B, C*H*W) -> (B, C, H, W)
            return [((s, blk // inner),) if i == big[0] else self.fresh([n])[0] for i, n in enumerate(sizes)]
        if len(big) >= 2 and sizes[big[0]] * sizes[big[1]] == self.spaces.size[self.spaces.find(s)] and \
                math.prod(sizes[big[1] + 1:]) == blk:  # (B, T, h*d) -> (B, T, h, d): heads, and per head its own dims
            path = self.module_path(self.node) or next(iter(self.spaces.producers[self.spaces.find(s)]), self.node.name)
            nest = self.spaces.nest(s, sizes[big[0]], (f"{path}.heads", f"{path}.head{{}}"))
            heads, within = self.spaces.kind[nest][1], self.spaces.kind[nest][3]
            return [((heads, 1),) if i == big[0] else ((within, 1),) if i == big[1] else self.fresh([n])[0] for i, n in enumerate(sizes)]
        raise Refused(f"a reshape splits units in a way the derivation does not follow ({tuple(shape)} -> {tuple(out)})")

    def tensor_layout(self, value: torch.Tensor) -> Annotation:
        """A parameter or buffer: each dim a ParamDim of its state-dict entry; a tensor outside the state is a constant."""
        entry = self.names.get(id(value))
        return self.fresh(value.shape) if entry is None else tuple(ParamDim(entry, d) for d in range(value.dim()))

    def heads_and_within(self, heads: Layout, within: Layout) -> int | None:
        """The nested space whose heads are ``heads`` and whose per-head dims are ``within``, if they are that."""
        if not (isinstance(heads, tuple) and isinstance(within, tuple) and len(heads) == len(within) == 1
                and heads[0][1] == within[0][1] == 1):
            return None
        kind = self.spaces.kind.get(self.spaces.find(within[0][0]))
        if kind is None or kind[0] != "within":
            return None
        nest = self.spaces.find(kind[1])
        return nest if self.spaces.find(self.spaces.kind[nest][1]) == self.spaces.find(heads[0][0]) else None

    def params(self, module: nn.Module, prefix: str, names: Sequence[str]) -> dict[str, Annotation | None]:
        """Layouts of a module's parameters and buffers, each dim a ParamDim (a tied tensor under its first name)."""
        result: dict[str, Annotation | None] = {}
        for name in names:
            value = getattr(module, name, None)
            result[name] = None if value is None else self.tensor_layout(value)
        return result

    # the interpreter -----------------------------------------------------------------------
    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        self.node = n
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
            return self.tensor_layout(self.fetch_attr(str(n.target))) if isinstance(value, torch.Tensor) else None
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
        if name in SPLIT_NAMES and isinstance(value, (tuple, list)) and isinstance(self.env.get(n.args[0]), torch.Tensor):
            return self.split(n, value)
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
            return self.group_norm(self.first(n)[0], self.env[n.args[0]], m.num_groups, p["weight"], p["bias"], str(n.target))
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
        return self.shapes[dim.entry][dim.dim]

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
        else:  # groups of channels: whole groups move together (in and out); inside, the input channels of every group
            # are permuted alike (the weight's input axis is shared by all groups) and each group's outputs on their own
            nest = self.blocks(x[1], groups, (f"{producer}.groups", f"{producer}.inputs"))
            _, heads, inners, _ = self.spaces.kind[nest]
            for inner in inners[1:]:
                self.spaces.union(inners[0], inner)
            self.unify(weight[1], ((inners[0], 1),))
            outputs = self.spaces.nest(self.spaces.new(value.shape[1]), groups, (f"{producer}.groups", f"{producer}.group{{}}"))
            self.spaces.union(heads, self.spaces.kind[outputs][1])
            out = ((outputs, 1),)
            self.unify(weight[0], out)
            if bias is not None:
                self.unify(bias[0], out)
        return (x[0], out, *self.fresh(value.shape[2:]))

    def blocks(self, layout: Layout, groups: int, names: tuple[str, str]) -> int:
        """The units of ``layout`` as ``groups`` equal blocks (a nested space), for a grouped convolution or GroupNorm."""
        segments = self.expand(layout) if isinstance(layout, tuple) else ()
        if len(segments) != 1 or segments[0][1] != 1:
            raise Refused(f"{groups} groups of channels over a concatenation or a flattened map: their blocks are not derived")
        return self.spaces.nest(segments[0][0], groups, names)

    def layer_norm(self, x: Annotation, dims: int, weight: Annotation | None, bias: Annotation | None) -> Annotation:
        for param in (weight, bias):
            for k in range(dims) if param is not None else ():
                self.unify(param[k], x[len(x) - dims + k])
        return x

    def group_norm(self, x: Annotation, value: torch.Tensor, groups: int, weight: Annotation | None, bias: Annotation | None,
                   producer: str) -> Annotation:
        """Statistics per group of channels: whole groups may move, and channels inside each group."""
        if groups not in (1, value.shape[1]):
            self.blocks(x[1], groups, (f"{producer}.groups", f"{producer}.group{{}}"))
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
        if name == "scaled_dot_product_attention":
            return self.dot_product_attention(n, value)
        if name in MATMUL_NAMES:
            return self.matmul(x, xv, self.layout[n.args[1]], self.env[n.args[1]], value)
        if name == "linear":
            bias = n.args[2] if len(n.args) > 2 else n.kwargs.get("bias")
            return self.linear(x, self.layout[n.args[1]], self.layout.get(bias) if isinstance(bias, fx.Node) else None, str(n.args[1].target))
        if name == "layer_norm":
            weight, bias = (n.args[i] if len(n.args) > i else n.kwargs.get(k) for i, k in ((2, "weight"), (3, "bias")))
            return self.layer_norm(x, len(self.arg(n, 1, "normalized_shape")), self.layout.get(weight), self.layout.get(bias))
        if name == "group_norm":
            weight, bias = (self.layout.get(self.arg_node(n, i, k)) for i, k in ((2, "weight"), (3, "bias")))
            return self.group_norm(x, xv, self.arg(n, 1, "num_groups"), weight, bias, self.module_path(n) or n.name)
        if name == "batch_norm":
            for i, key in enumerate(("running_mean", "running_var", "weight", "bias"), 1):
                if isinstance(self.arg_node(n, i, key), fx.Node):
                    self.unify(self.layout[self.arg_node(n, i, key)][0], x[1])
            return x
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
            elif isinstance(item, slice) and item.step in (None, 1) and isinstance(x[d], tuple):  # qkv[..., :C]: a slice of units
                start, stop, _ = item.indices(xv.shape[d])
                result.append(self.pieces(x[d], [start, stop - start, xv.shape[d] - stop])[1])
                d += 1
            else:
                raise Refused(f"indexing with {item!r} selects some units of a dimension")
        return (*result, *x[d:])

    def split(self, n: fx.Node, value: Sequence[torch.Tensor]) -> list[Annotation]:
        """split/chunk: every piece keeps the other dims; along the split dim each is a slice of the units."""
        x, xv = self.first(n)
        dim = self.arg(n, 2, "dim", 0) % xv.dim()
        pieces = self.pieces(x[dim], [v.shape[dim] for v in value])
        return [(*x[:dim], piece, *x[dim + 1:]) for piece in pieces]

    def dot_product_attention(self, n: fx.Node, value: torch.Tensor) -> Annotation:
        """softmax(q kᵀ) v per head: query and key dims are the same units, key and value positions too.

        With heads split off by a reshape (``q.view(B, T, h, d).transpose(1, 2)``), the heads of q, k
        and v are one permutation, and inside head i the query/key dims (shared by q and k) and the
        value dims (shared by v and what consumes the output) are permutations of their own.
        """
        q, k, v = (self.layout[self.arg_node(n, i, key)] for i, key in enumerate(("query", "key", "value")))
        shapes = [self.env[self.arg_node(n, i, key)].shape for i, key in enumerate(("query", "key", "value"))]
        qk = self.unify(q[-1], k[-1])
        self.unify(k[-2], v[-2])
        lead = self.broadcast([q[:-2], k[:-2], v[:-2]], [s[:-2] for s in shapes], value.shape[:-2])
        mask = self.arg_node(n, 3, "attn_mask")
        if isinstance(mask, fx.Node):
            self.broadcast([self.layout[mask], (*lead, q[-2], k[-2])], [self.env[mask].shape, value.shape[:-1] + shapes[1][-2:-1]],
                           value.shape[:-1] + shapes[1][-2:-1])
        for within, kind in ((qk, "qk"), (v[-1], "v")):
            if len(lead) and (nest := self.heads_and_within(lead[-1], within)) is not None:
                self.name_nest(nest, self.module_path(n), kind)
        return (*lead, q[-2], v[-1])

    def name_nest(self, nest: int, path: str, kind: str) -> None:
        """Name an attention block's heads and head dims after its module (or, at the top level, its projection)."""
        _, heads, inners, _ = self.spaces.kind[nest]
        heads = self.spaces.find(heads)
        path = path or self.spaces.label[heads].removesuffix(".heads")
        self.spaces.label[heads] = f"{path}.heads"
        for i, inner in enumerate(inners):
            self.spaces.label[self.spaces.find(inner)] = f"{path}.head{i}.{kind}"

    def arg_node(self, n: fx.Node, index: int, key: str) -> Any:
        return n.args[index] if len(n.args) > index else n.kwargs.get(key)

    def matmul(self, a: Annotation, av: torch.Tensor, b: Annotation, bv: torch.Tensor, value: torch.Tensor) -> Annotation:
        """(..., n, m) @ (..., m, p): the contracted dims are the same units; a parameter's rows become a layer's units."""
        if av.dim() < 2 or bv.dim() < 2:
            raise Refused("a matrix product with a vector")
        self.unify(a[-1], b[-2])
        lead = self.broadcast([a[:-2], b[:-2]], [av.shape[:-2], bv.shape[:-2]], value.shape[:-2])
        rows, columns = a[-2], b[-1]
        rows, columns = (self.produce(d, None, d.entry) if isinstance(d, ParamDim) else d for d in (rows, columns))
        return (*lead, rows, columns)

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
        derivation = Derivation(graph, tracer.outputs_of, network.state_dict(keep_vars=True))
        with torch.no_grad():
            derivation.run(example[:2])
    finally:
        network.train(training)
    return build(derivation, graph, tracer.calls)


NORM_NAMES = {"batch_norm", "layer_norm", "group_norm"}


def build(d: Derivation, graph: fx.GraphModule, calls: dict[str, int]) -> PermutationSpec:
    """Groups from the unpinned spaces that layers created, in forward order, with their probes.

    Axes recorded on a structured space (sliced, or in blocks) go to its components first.
    """
    spaces = d.spaces
    for s in range(len(spaces.parent)):
        if spaces.axes[spaces.find(s)]:
            spaces.shared(s)
    axes: dict[int, list[tuple[int, Axis]]] = {}
    for root in sorted({spaces.find(s) for s in range(len(spaces.parent))}):
        for order, axis in spaces.axes[root]:
            for leaf, own in spaces.leaves(root, axis):
                axes.setdefault(spaces.find(leaf), []).append((order, own))
    chosen = [r for r in sorted(axes) if spaces.kind.get(r) is None and (spaces.producers[r] or r in spaces.label)
              and not spaces.pinned[r] and spaces.size[r] > 1]
    heads = {spaces.find(h) for h in spaces.heads}
    probes = find_probes(d, graph, calls, set(chosen) - heads)
    groups: list[Group] = []
    streams = 0
    used: set[str] = set()
    for root in chosen:
        producers = list(dict.fromkeys(spaces.producers[root]))
        if root in spaces.label:
            name = spaces.label[root]
        elif len(producers) == 1:
            name = producers[0]
        else:
            name, streams = f"stream{streams}", streams + 1
        while name in used:
            name += "_"
        used.add(name)
        own = tuple(dict.fromkeys(axis for _, axis in sorted(axes[root], key=lambda pair: pair[0])))
        groups.append(Group(name, spaces.size[root], own, tuple(probes.get(root, ()))))
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
