"""Torch-facing native fp32 attention (attention.c): softmax(q k^T * scale) v for CPU fp32 tensors, no autograd.

`native_attention(q, k, v, scale=None, causal=False)` takes q (B, H, Lq, D) and k, v (B, Hkv, Lk, D) as
`F.scaled_dot_product_attention` does (H a multiple of Hkv, D up to 256), strided views included (only the
last dimension must be contiguous; others are copied), and returns (B, H, Lq, D) as a view of a (B, Lq, H, D)
tensor, the layout SDPA's CPU kernel returns too, so `y.transpose(1, 2).reshape(B, Lq, H * D)` is free.
`supports(...)` says whether a call fits; `lingvis.nn.fast_attention` decides when to use it.
"""
from __future__ import annotations

import ctypes
import math

import torch

from .build import load
from .kernels import available

MAX_HEAD_DIM = 256


def supports(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """True when the kernel takes these tensors: fp32 CPU, 4-D, matching shapes, no autograd, D <= 256, not
    under `torch.compile`."""
    if not all(t.dtype == torch.float32 and t.device.type == "cpu" and t.dim() == 4 for t in (q, k, v)):
        return False
    B, H, _, D = q.shape
    if k.shape != v.shape or k.shape[0] != B or k.shape[3] != D or not 0 < D <= MAX_HEAD_DIM:
        return False
    if k.shape[1] == 0 or H % k.shape[1] or k.shape[2] == 0:
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return False
    return not torch.compiler.is_compiling() and built_with_avx512()  # Dynamo cannot trace the ctypes call


def built_with_avx512() -> bool:
    """True when the native kernels are on and were compiled with AVX-512 (the kernel's only code path; on
    other CPUs `lv_attention_f32` returns -1 and every call stays on SDPA)."""
    return available() and bool(load().lv_features() & 1)


def _rows(t: torch.Tensor) -> torch.Tensor:  # the last dimension contiguous (strided views are read as they are)
    return t if t.stride(-1) == 1 or t.shape[-1] == 1 else t.contiguous()


def native_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None,
                     causal: bool = False, checked: bool = False) -> torch.Tensor:
    """softmax(q k^T * scale [+ causal mask]) v: q (B, H, Lq, D), k/v (B, Hkv, Lk, D) -> (B, H, Lq, D).
    `checked`: the caller has just seen `supports(q, k, v)` hold (nn/fast_attention asks once per call)."""
    if not checked and not supports(q, k, v):
        raise ValueError(f"native attention needs fp32 CPU tensors without autograd, q (B, H, Lq, D) and k = v "
                         f"(B, Hkv, Lk, D), H % Hkv == 0, D <= {MAX_HEAD_DIM} and the native kernels built; got "
                         f"{q.dtype} {tuple(q.shape)}, {k.dtype} {tuple(k.shape)}, {v.dtype} {tuple(v.shape)}")
    q, k, v = _rows(q), _rows(k), _rows(v)
    B, H, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    out = torch.empty(B, Lq, H, D)  # (B, Lq, H, D); returned as its (B, H, Lq, D) view
    y = out.transpose(1, 2)
    strides = (ctypes.c_long * 12)(*(s for t in (q, k, v, y) for s in t.stride()[:3]))
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    rc = load().lv_attention_f32(q.data_ptr(), k.data_ptr(), v.data_ptr(), y.data_ptr(), B, H, Hkv, Lq, Lk, D,
                                 strides, scale, int(causal), torch.get_num_threads())
    if rc != 0:
        reason = {-1: "built without AVX-512", -2: "no memory for the transposed keys", -3: "head dim"}.get(rc, rc)
        raise RuntimeError(f"lv_attention_f32 failed: {reason}")
    return y
