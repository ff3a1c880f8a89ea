"""Cheaper second derivatives of convolutions and eval-mode BatchNorm, for Hessian-vector products.

Inside ``cheap_double_backward()`` the gradient graph that products run backward through is built with
two substitutions, the same values to rounding:

- a convolution's backward is a node whose own backward is two convolutions and ONE
  ``convolution_backward`` (the gradients for the input and the weight together). PyTorch's
  ``_convolution_double_backward`` computes those two as a transposed convolution and a convolution
  with batch and channels swapped (copies of both tensors first), about 2x the time on the CPU;
- BatchNorm in eval mode (running statistics) is the per-channel affine map it is, ``x * scale + shift``,
  whose double backward is two multiplications; ``native_batch_norm``'s double backward is the
  training-mode formula with its reductions;
- on the CPU, 2-d convolutions take their input channels-last (NHWC), where oneDNN's forward, backward
  and double-backward convolutions all run faster.

``bench/hessian.py`` (TinyTen, batch 128, CPU, 1 thread, one product over one ordinary gradient):
2.45 with PyTorch's own formulas; convolutions alone 2.23, BatchNorm alone 2.25, both 2.0-2.1, both and
channels-last 1.8. The tensor-function mode's per-call bookkeeping in torch is bounded (the Python heap
levels off at ~130 KB over 1000 products). Convolutions with string padding ("same") or unbatched input and
BatchNorm in training mode are left as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

DIMENSIONS = {F.conv1d: 1, F.conv2d: 2, F.conv3d: 3}
Geometry = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], int]  # stride, padding, dilation, groups


def _expand(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    return (value,) * dims if isinstance(value, int) else tuple(value)


def _convolve(x: torch.Tensor, weight: torch.Tensor, geometry: Geometry, bias: torch.Tensor | None = None) -> torch.Tensor:
    stride, padding, dilation, groups = geometry
    return torch.convolution(x, weight, bias, stride, padding, dilation, False, [0] * len(stride), groups)


def _convolution_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, geometry: Geometry,
                          mask: tuple[bool, bool, bool]) -> tuple:
    stride, padding, dilation, groups = geometry
    return torch.ops.aten.convolution_backward(grad, x, weight, [weight.shape[0]] if mask[2] else None, stride, padding,
                                               dilation, False, [0] * len(stride), groups, list(mask))


class _ConvolutionGradient(torch.autograd.Function):
    """(∂x, ∂W, ∂b) of a convolution from its output's gradient, differentiable once more."""

    @staticmethod
    def forward(ctx, grad, x, weight, geometry, mask):
        ctx.save_for_backward(grad, x, weight)
        ctx.geometry = geometry
        ctx.set_materialize_grads(False)
        return _convolution_backward(grad, x, weight, geometry, mask)

    @staticmethod
    def backward(ctx, dx, dweight, dbias):
        grad, x, weight = ctx.saved_tensors
        geometry = ctx.geometry
        terms = ([_convolve(dx, weight, geometry)] if dx is not None else []) + ([_convolve(x, dweight, geometry)] if dweight is not None else [])
        if dbias is not None:
            terms.append(dbias.view(1, -1, *[1] * (grad.dim() - 2)).expand_as(grad))
        ggrad = sum(terms[1:], terms[0]) if terms and ctx.needs_input_grad[0] else None
        mask = (ctx.needs_input_grad[1] and dweight is not None, ctx.needs_input_grad[2] and dx is not None, False)
        gx = gweight = None
        if any(mask):  # ∂x = conv_transpose(grad, dW) and ∂W = correlate(dx, grad): one call for both
            gx, gweight, _ = _convolution_backward(grad, x if dx is None else dx, weight if dweight is None else dweight, geometry, mask)
        return ggrad, gx, gweight, None, None


class _Convolution(torch.autograd.Function):
    """A convolution whose backward is ``_ConvolutionGradient`` (the node a product runs backward through)."""

    @staticmethod
    def forward(ctx, x, weight, bias, geometry):
        ctx.save_for_backward(x, weight)
        ctx.geometry = geometry
        return _convolve(x, weight, geometry, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        return *_ConvolutionGradient.apply(grad, x, weight, ctx.geometry, tuple(ctx.needs_input_grad[:3])), None


def _eval_batch_norm(x, running_mean, running_var, weight=None, bias=None, eps=1e-5) -> torch.Tensor:
    scale = torch.rsqrt(running_var + eps)
    scale = scale if weight is None else scale * weight
    shift = -running_mean * scale
    shift = shift if bias is None else shift + bias
    shape = (1, -1, *[1] * (x.dim() - 2))
    return x * scale.view(shape) + shift.view(shape)


class _Substitutions(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in DIMENSIONS:
            found = dict(zip(("input", "weight", "bias", "stride", "padding", "dilation", "groups"), args), **kwargs)
            dims = DIMENSIONS[func]
            if not isinstance(found.get("padding", 0), str) and found["input"].dim() == dims + 2:  # unbatched: left as it is
                geometry = (*(_expand(found.get(key, default), dims) for key, default in (("stride", 1), ("padding", 0), ("dilation", 1))),
                            found.get("groups", 1))
                x = found["input"]
                if x.dim() == 4 and x.device.type == "cpu":  # oneDNN's convolutions (all three kinds) are faster on NHWC
                    x = x.contiguous(memory_format=torch.channels_last)
                return _Convolution.apply(x, found["weight"], found.get("bias"), geometry)
        if func is F.batch_norm:
            found = dict(zip(("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"), args), **kwargs)
            if not found.get("training", False) and found.get("running_mean") is not None and found.get("running_var") is not None:
                return _eval_batch_norm(found["input"], found["running_mean"], found["running_var"], found.get("weight"),
                                        found.get("bias"), found.get("eps", 1e-5))
        return func(*args, **kwargs)


@contextmanager
def cheap_double_backward() -> Iterator[None]:
    """Build the graphs of the block's forward passes with the substitutions above."""
    with _Substitutions():
        yield
