"""Torch-facing native GroupNorm (group_norm.c) for channels-last fp32 feature maps in inference, with an
optional per-(batch, channel) value added before it (a UNet ResBlock's time embedding) and SiLU after it, in one
kernel call: `group_norm_nhwc(x, norm, add=None, silu=False, out=None)`. `supports(x, norm)` says whether a call
fits; otherwise callers keep `F.group_norm` (torch's channels-last GroupNorm is 1.1-1.7x slower than its NCHW
one at the t2i UNet's 8x8-32x32 maps, and SiLU is a second pass).
"""
from __future__ import annotations

import torch
from torch import nn

from .build import load
from .kernels import available


def supports(x: torch.Tensor, norm: nn.GroupNorm) -> bool:
    """True for a channels-last (and not also NCHW-contiguous) fp32 CPU (B, C, H, W) map without autograd, an
    fp32 `norm` over its C channels, not under `torch.compile`, with the native kernels built."""
    if x.dim() != 4 or x.dtype != torch.float32 or x.device.type != "cpu" or x.shape[1] != norm.num_channels:
        return False
    if not x.is_contiguous(memory_format=torch.channels_last) or x.is_contiguous() or x.numel() == 0:
        return False
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in norm.parameters())):
        return False
    if norm.affine and norm.weight.dtype != torch.float32:
        return False
    return not torch.compiler.is_compiling() and available()


def group_norm_nhwc(x: torch.Tensor, norm: nn.GroupNorm, add: torch.Tensor | None = None, silu: bool = False,
                    out: torch.Tensor | None = None, checked: bool = False) -> torch.Tensor:
    """act(norm(x + add)): x (B, C, H, W) channels-last, add (B, C) or None, act SiLU or none; the result is a
    channels-last (B, C, H, W) tensor (`out`, which may be `x` itself, when given). `checked`: the caller has
    just seen `supports(x, norm)` hold (the UNet's blocks ask once per call, not twice)."""
    if not checked and not supports(x, norm):
        raise ValueError(f"native group_norm needs a channels-last fp32 CPU (B, C, H, W) map without autograd and "
                         f"the native kernels built; got {x.dtype} {tuple(x.shape)} on {x.device}")
    B, C, H, W = x.shape
    if add is not None:
        add = add.reshape(B, C).to(torch.float32).contiguous()  # (B, C)
    y = torch.empty_like(x, memory_format=torch.channels_last) if out is None else out  # (B, C, H, W) NHWC
    if y.shape != x.shape or not y.is_contiguous(memory_format=torch.channels_last):
        raise ValueError(f"out must be a channels-last {tuple(x.shape)} tensor, got {tuple(y.shape)}")
    weight = _flat(norm.weight) if norm.affine else None  # (C,)
    bias = _flat(norm.bias) if norm.affine else None  # (C,)
    rc = load().lv_group_norm_nhwc_f32(x.data_ptr(), None if add is None else add.data_ptr(),
                                       None if weight is None else weight.data_ptr(),
                                       None if bias is None else bias.data_ptr(), y.data_ptr(), B, H * W, C,
                                       norm.num_groups, float(norm.eps), int(silu), torch.get_num_threads())
    if rc != 0:
        raise RuntimeError(f"lv_group_norm_nhwc_f32 failed ({rc}: {'no memory' if rc == -2 else 'bad groups'})")
    return y


def _flat(p: torch.Tensor) -> torch.Tensor:
    """A (C,) parameter as the kernel reads it: itself when contiguous (only its address is passed), else a copy."""
    return p if p.is_contiguous() else p.detach().contiguous()
