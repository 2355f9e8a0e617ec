"""Normalisation layers: LayerNorm (torch's) and RMSNorm, built by name; in fp32 inference both run on lingvis'
native row-norm kernel where it is built (`native/row_norm.py`: RMSNorm in one call instead of five passes, and
`add_then_norm`, a pre-norm block's residual add fused with the next branch's norm)."""
from __future__ import annotations

import torch
from torch import nn

_NATIVE = []  # [native.row_norm], imported on first use (native.step imports this module)


def _native():
    if not _NATIVE:
        from ..native import row_norm
        _NATIVE.append(row_norm)
    return _NATIVE[0]


class RMSNorm(nn.Module):
    """Root-mean-square norm (no mean subtraction, no bias)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., C)
        native = _native()
        if native.supports(x, self.weight):
            return native.row_norm(x, self.weight, None, self.eps, rms=True)  # (..., C)
        var = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(var + self.eps)).type_as(x) * self.weight


def _native_spec(norm: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None, float, bool] | None:
    """(weight, bias, eps, rms) of a plain RMSNorm or a last-dimension `nn.LayerNorm` without hooks, else None."""
    if norm._forward_hooks or norm._forward_pre_hooks:
        return None
    if type(norm) is RMSNorm:
        return norm.weight, None, norm.eps, True
    if type(norm) is nn.LayerNorm and len(norm.normalized_shape) == 1:
        return norm.weight, norm.bias, norm.eps, False
    return None


def add_then_norm(x: torch.Tensor, y: torch.Tensor, norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(x + y, norm(x + y)) in one native pass over the rows, for x and y (..., C) of one shape in fp32 inference
    (contiguous, no autograd) and `norm` a plain RMSNorm or last-dimension LayerNorm; None when that does not
    hold (the caller then adds and norms as usual)."""
    spec = _native_spec(norm)
    if spec is None or y.shape != x.shape or y.dtype is not x.dtype or not y.is_contiguous() or not y.is_cpu:
        return None
    weight, bias, eps, rms = spec
    native = _native()
    if not native.supports(x, weight, bias) or (torch.is_grad_enabled() and y.requires_grad):
        return None
    if x.shape[-1] != (weight.shape[0] if weight is not None else x.shape[-1]):
        return None
    return native.add_norm(x, y, weight, bias, eps, rms)


def make_norm(kind: str, dim: int, eps: float = 1e-5, bias: bool = True) -> nn.Module:
    """`kind` is 'layernorm' or 'rmsnorm'."""
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return RMSNorm(dim, eps=eps)
    raise ValueError(f"unknown norm {kind!r}; expected 'layernorm' or 'rmsnorm'")
