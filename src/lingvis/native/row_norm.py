"""Torch-facing native row norms (row_norm.c) for fp32 inference: LayerNorm or RMSNorm over the last dimension,
optionally after a residual add, in one kernel call: `add_norm(x, r, weight, bias, eps, rms)` returns
(x + r, norm(x + r)); `row_norm(x, weight, bias, eps, rms)` returns norm(x).

torch's RMSNorm in fp32 is five passes (pow, mean as sum + divide, rsqrt, two products; ~200 us for a 220 x 512
prompt at 1 thread) and a pre-norm block's residual add is one more pass with its own buffer before the next
norm reads it again. `supports(x, weight)` says whether a call fits; otherwise callers keep the torch path.
"""
from __future__ import annotations

import torch

from .build import load
from .kernels import available

_F32 = torch.float32


def supports(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None = None) -> bool:
    """True for a contiguous fp32 CPU input (at least one row of C > 0 values) without autograd, fp32 (C,)
    weight and bias (or none), not under `torch.compile`, with the native kernels built."""
    if x.dtype is not _F32 or not x.is_cpu or x.dim() == 0 or x.numel() == 0 or not x.is_contiguous():
        return False
    C = x.shape[-1]
    for p in (weight, bias):
        if p is not None and (p.dtype is not _F32 or not p.is_cpu or p.shape != (C,)):
            return False
    if torch.is_grad_enabled() and (x.requires_grad or any(p is not None and p.requires_grad for p in (weight, bias))):
        return False
    return not torch.compiler.is_compiling() and available()


def add_norm(x: torch.Tensor, r: torch.Tensor | None, weight: torch.Tensor | None, bias: torch.Tensor | None,
             eps: float, rms: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, y) with s = x + r (x itself when r is None) and y = RMSNorm(s) (`rms`) or LayerNorm(s) over the last
    dimension (weight and bias (C,) or None; RMSNorm has no bias). x and r (..., C) of one shape; the caller has
    seen `supports(x, weight, bias)` hold (and r is contiguous fp32)."""
    if r is not None and (r.shape != x.shape or r.dtype is not _F32 or not r.is_contiguous() or not r.is_cpu):
        raise ValueError(f"the residual must be a contiguous fp32 CPU tensor of the input's shape {tuple(x.shape)}, "
                         f"got {r.dtype} {tuple(r.shape)}")
    C = x.shape[-1]
    s = x if r is None else torch.empty_like(x)  # (..., C)
    y = torch.empty_like(x)  # (..., C)
    w, b = _flat(weight), None if rms else _flat(bias)  # (C,) or None, held through the call
    rc = load().lv_add_norm_f32(x.data_ptr(), None if r is None else r.data_ptr(),
                                None if r is None else s.data_ptr(), y.data_ptr(), None if w is None else w.data_ptr(),
                                None if b is None else b.data_ptr(), x.numel() // C, C, eps, rms,
                                torch.get_num_threads())
    if rc != 0:
        raise RuntimeError(f"lv_add_norm_f32 failed ({rc})")
    return s, y


def _flat(p: torch.Tensor | None) -> torch.Tensor | None:
    """A (C,) parameter as the kernel reads it: itself when contiguous (only its address is passed), else a copy."""
    return p if p is None or p.is_contiguous() else p.detach().contiguous()


def row_norm(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float,
             rms: bool) -> torch.Tensor:
    """RMSNorm (`rms`) or LayerNorm of x (..., C) over its last dimension; see `add_norm`."""
    return add_norm(x, None, weight, bias, eps, rms)[1]
