"""Torch-facing native rotary embedding (rotary.c) for fp32 inference: `rotary(x, cos, sin)` is
x cos + rotate_half(x) sin for queries or keys x (B, H, T, D), read through their strides (the views of a
fused qkv product), into a new contiguous (B, H, T, D) tensor in one pass (torch's in-place route is a product
and two strided multiply-adds: three passes). `supports(x, cos, sin)` says whether a call fits; otherwise
callers keep the torch path.
"""
from __future__ import annotations

import ctypes

import torch

from .build import load
from .kernels import available

_F32 = torch.float32


def supports(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> bool:
    """True for fp32 CPU x (B, H, T, D) with D even and its last dimension contiguous, cos and sin (B or 1, 1, T,
    D) of one layout with their last dimension contiguous, no autograd, not under `torch.compile`, with the
    native kernels built."""
    if x.dim() != 4 or x.dtype is not _F32 or not x.is_cpu or x.stride(-1) != 1 or x.shape[-1] % 2 or x.numel() == 0:
        return False
    B, _, T, D = x.shape
    for t in (cos, sin):
        if (t.dim() != 4 or t.dtype is not _F32 or not t.is_cpu or t.shape[0] not in (1, B) or t.shape[1] != 1
                or t.shape[2:] != (T, D) or t.stride(-1) != 1):
            return False
    if cos.shape != sin.shape or cos.stride() != sin.stride():
        return False
    if torch.is_grad_enabled() and (x.requires_grad or cos.requires_grad or sin.requires_grad):
        return False
    return not torch.compiler.is_compiling() and available()


def rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, D) rotated by its positions' (cos, sin) (B|1, 1, T, D) -> a new contiguous (B, H, T, D); the
    caller has seen `supports(x, cos, sin)` hold."""
    B, H, T, D = x.shape
    out = torch.empty(B, H, T, D)  # (B, H, T, D)
    xs = (ctypes.c_long * 3)(*x.stride()[:3])
    cs = (ctypes.c_long * 2)(0 if cos.shape[0] == 1 else cos.stride(0), cos.stride(2))
    rc = load().lv_rotary_f32(x.data_ptr(), cos.data_ptr(), sin.data_ptr(), out.data_ptr(), B, H, T, D, xs, cs,
                              torch.get_num_threads())
    if rc != 0:
        raise RuntimeError(f"lv_rotary_f32 failed ({rc})")
    return out
