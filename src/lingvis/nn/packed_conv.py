"""CPU fp32 inference convolutions on channels-last feature maps with the weight kept in oneDNN's own blocked
layout, and the residual add fused into the convolution's output.

`conv2d(conv, x, add=None, add_into=False)` is `conv(x)` (plus `add`). PyTorch's channels-last convolution
(`mkldnn_convolution`) takes a plain weight and reorders it into oneDNN's blocked layout on every call; here the
weight is reordered once per (weight version, input shape) (`torch._C._nn.mkldnn_reorder_conv2d_weight`, what
inductor's freezing pass does) and the product runs through `torch.ops.mkldnn._convolution_pointwise`, the same
oneDNN kernel, so the outputs are equal. With `add` the sum is oneDNN's binary post-op: written into `add` itself
when `add_into` (a fresh tensor the caller owns), else into a new tensor.

Measured per call (2026-12-07, AMD EPYC Zen 4, 1 thread, thread CPU time, best of 5 x 40 calls, load 4.7-5.5),
plain channels-last vs packed: 8 x 128 x 8 x 8 -> 128 1326 vs 1199 us, 8 x 256 x 8 x 8 -> 128 2978 vs 2663 us,
8 x 128 x 4 x 4 -> 128 365 vs 291 us, 8 x 128 x 1 x 1 -> 128 88 vs 34 us; at 16 x 16 and 32 x 32 within 2%
(the reorder is then small against the product). Adding a residual in the product: 8 x 128 x 8 x 8 1384 (conv +
`add_`) vs 1249 us (fused, in place).

Taken only without autograd, outside `torch.compile`, for 4-d channels-last fp32 CPU inputs of a zero-padded
`nn.Conv2d` with numeric padding; otherwise the plain module. `LINGVIS_PACKED_CONV=0` (read at import) or
`ENABLED = False` turns the path off. The packed copies (one per input shape seen, at most `MAX_SHAPES` per
convolution) live on the module and are remade when the weight changes (optimizer step, `load_state_dict`).
"""
from __future__ import annotations

import os

import torch
from torch import nn

_HAS_OPS = (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
            and hasattr(torch._C._nn, "mkldnn_reorder_conv2d_weight"))
ENABLED = _HAS_OPS and os.environ.get("LINGVIS_PACKED_CONV", "1") != "0"
MAX_SHAPES = 4  # packed copies kept per convolution (a guided sampler feeds 2 batch sizes per map size)
_CACHE = "_lingvis_packed_conv"
_F32 = torch.float32


def _version(w: torch.Tensor) -> int:
    return -1 if w.is_inference() else w._version  # inference tensors keep no version counter


def eligible(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether `conv2d(conv, x)` runs on a packed weight (see the module doc)."""
    return (ENABLED and x.dim() == 4 and x.dtype is _F32 and x.is_cpu and not torch.is_grad_enabled()
            and conv.weight.dtype is _F32 and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            and not torch.compiler.is_compiling())


def packed_weight(conv: nn.Conv2d, shape: torch.Size) -> torch.Tensor:
    """conv's weight in oneDNN's blocked layout for inputs of `shape` (an opaque mkldnn tensor), cached."""
    w = conv.weight
    key = (w.data_ptr(), _version(w), tuple(shape))
    cache = conv.__dict__.get(_CACHE)
    if cache is None or cache[0] != key[:2]:  # another weight or new contents: drop every shape's copy
        cache = conv.__dict__[_CACHE] = (key[:2], {})
    copies = cache[1]
    packed = copies.get(key[2])
    if packed is None:
        if len(copies) >= MAX_SHAPES:
            copies.pop(next(iter(copies)))
        packed = torch._C._nn.mkldnn_reorder_conv2d_weight(w.detach().contiguous().to_mkldnn(), list(conv.padding),
                                                           list(conv.stride), list(conv.dilation), conv.groups,
                                                           list(shape))
        copies[key[2]] = packed
    return packed


def conv2d(conv: nn.Conv2d, x: torch.Tensor, add: torch.Tensor | None = None, add_into: bool = False) -> torch.Tensor:
    """conv(x) (+ add): x (B, C, H, W) channels-last -> (B, O, H', W') channels-last on the packed path; `add`
    (B, O, H', W') is overwritten with the result when `add_into`. Elsewhere the plain module (and `+ add`)."""
    if not eligible(conv, x) or (add is not None and not _addable(conv, add, x)):
        y = conv(x)
        if add is None:
            return y
        return add.add_(y) if add_into else y + add
    packed = packed_weight(conv, x.shape)
    args = (packed, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    if add is None:
        return torch.ops.mkldnn._convolution_pointwise(x, *args, "none", [], "")
    if add_into:
        return torch.ops.mkldnn._convolution_pointwise_.binary(add, x, *args, "add", None, None, [], None)
    return torch.ops.mkldnn._convolution_pointwise.binary(x, add, *args, "add", None, None, [], None)


def out_shape(conv: nn.Conv2d, x: torch.Tensor) -> tuple[int, int, int, int]:
    """(B, O, H', W') of conv(x) (numeric padding)."""
    hw = [(n + 2 * p - d * (k - 1) - 1) // s + 1
          for n, p, d, k, s in zip(x.shape[2:], conv.padding, conv.dilation, conv.kernel_size, conv.stride)]
    return (x.shape[0], conv.out_channels, *hw)


def _addable(conv: nn.Conv2d, add: torch.Tensor, x: torch.Tensor) -> bool:
    """oneDNN's binary post-op takes a channels-last fp32 CPU tensor of the output's shape."""
    return (add.dtype is _F32 and add.is_cpu and tuple(add.shape) == out_shape(conv, x)
            and add.is_contiguous(memory_format=torch.channels_last) and not add.is_contiguous())
