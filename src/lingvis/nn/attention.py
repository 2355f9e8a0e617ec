"""Multi-head attention (self or cross) on top of `scaled_dot_product_attention`."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cache import KVCache
from .position import apply_rotary


class Attention(nn.Module):
    """Self-attention uses one fused `qkv` projection; cross-attention projects `q` from the input and a
    fused `kv` from the memory (encoder output). Masks are built once per forward by the model."""

    def __init__(self, dim: int, n_heads: int, bias: bool = True, dropout: float = 0.0,
                 cross: bool = False, kv_dim: int | None = None):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"width {dim} is not divisible by n_heads {n_heads}")
        self.n_heads, self.head_dim, self.cross = n_heads, dim // n_heads, cross
        if cross:
            self.q = nn.Linear(dim, dim, bias=bias)
            self.kv = nn.Linear(kv_dim or dim, 2 * dim, bias=bias)
        else:
            self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, H, T, D)
        B, T, _ = t.shape
        return t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)

    def _memory_kv(self, memory: torch.Tensor, cache: KVCache | None, layer: int):
        if cache is not None and cache.cross[layer] is not None:
            return cache.cross[layer]
        k, v = self.kv(memory).chunk(2, dim=-1)  # (B, S, C) each
        kv = (self._heads(k), self._heads(v))
        if cache is not None:
            cache.cross[layer] = kv
        return kv

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None, cache: KVCache | None = None,
                layer: int = 0, memory: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, T, C); attn_mask: bool (B|1, 1, T, S), True = may attend
        B, T, C = x.shape
        if self.cross:
            if memory is None:
                raise ValueError("cross-attention needs `memory` (the encoder output)")
            q = self._heads(self.q(x))
            k, v = self._memory_kv(memory, cache, layer)  # (B, H, S, D)
        else:
            q, k, v = (self._heads(t) for t in self.qkv(x).split(C, dim=-1))  # (B, H, T, D)
            if rope is not None:
                q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
            if cache is not None:
                k, v = cache.update(layer, k, v)  # (B, H, S, D), S = cached + T
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal and attn_mask is None,
            dropout_p=self.dropout if self.training else 0.0)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.proj(y))  # (B, T, C)
