"""Multi-head attention (self or cross) on top of `scaled_dot_product_attention`: grouped-query heads,
a head width independent of the model width, biases per projection, optional q/k norms and a sliding
window, all in one class. Calls without a mask or dropout go through `fast_attention.attention` (lingvis'
native fp32 kernel on the CPU where it measures faster, SDPA otherwise).

`fixed_memory()` is a context manager for loops that call a model many times on the same memory (a diffusion
sampler's text states): inside it, without gradients, cross-attention projects the keys/values of each memory
tensor once per module and reuses them (the memo holds the memory tensor itself, so an identity match is that
tensor; it is dropped on exit)."""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .cache import KVCache
from .context import BlockInputs
from .fast_attention import attention
from .norm import make_norm
from .packed_linear import linear
from .position import apply_rotary

_NO_INPUTS = BlockInputs()
_MEMORY_KV: contextvars.ContextVar[dict | None] = contextvars.ContextVar("lingvis_memory_kv", default=None)


@contextlib.contextmanager
def fixed_memory() -> Iterator[None]:
    """Cross-attention keys/values projected once per (module, memory tensor) inside the block, without gradients:
    for callers that pass the same, unchanged memory tensors on every call (e.g. the text states of a sampler)."""
    token = _MEMORY_KV.set({})
    try:
        yield
    finally:
        _MEMORY_KV.reset(token)


class Attention(nn.Module):
    """Self-attention uses one fused `qkv` projection ((H + 2 KV) * D outputs: queries, then keys, then
    values); cross-attention projects `q` from the input and a fused `kv` from the memory (encoder output).
    Checkpoints with separate q/k/v weights are fused by the converters (interop), which is why the names
    are fixed here. `n_kv_heads < n_heads` groups query heads over shared keys/values (GQA, MQA with 1);
    `qk_norm` ('rmsnorm' or 'layernorm') normalises each head's queries and keys (Qwen3); `window` limits
    self-attention to the last `window` positions (Mistral). `forward(x, ctx)` reads masks, rotary angles,
    the KV cache and the memory from the block's `BlockInputs`."""

    def __init__(self, dim: int, n_heads: int, bias: bool = True, dropout: float = 0.0, cross: bool = False,
                 kv_dim: int | None = None, *, n_kv_heads: int | None = None, head_dim: int | None = None,
                 qkv_bias: bool | None = None, out_bias: bool | None = None, qk_norm: str | None = None,
                 norm_eps: float = 1e-6, window: int | None = None, out_dim: int | None = None):
        super().__init__()
        if head_dim is None and dim % n_heads:
            raise ValueError(f"width {dim} is not divisible by n_heads {n_heads}")
        kv_heads = n_kv_heads or n_heads
        if n_heads % kv_heads:
            raise ValueError(f"n_heads {n_heads} is not a multiple of n_kv_heads {kv_heads}")
        if window is not None and (cross or window < 1):
            raise ValueError(f"a sliding window needs self-attention and window >= 1, got {window}")
        self.n_heads, self.n_kv_heads, self.cross, self.window = n_heads, kv_heads, cross, window
        self.head_dim = D = head_dim or dim // n_heads
        qkv_bias = bias if qkv_bias is None else qkv_bias
        if cross:
            self.q = nn.Linear(dim, n_heads * D, bias=qkv_bias)
            self.kv = nn.Linear(kv_dim or dim, 2 * kv_heads * D, bias=qkv_bias)
        else:
            self.qkv = nn.Linear(dim, (n_heads + 2 * kv_heads) * D, bias=qkv_bias)
        self.q_norm = make_norm(qk_norm, D, norm_eps) if qk_norm else None
        self.k_norm = make_norm(qk_norm, D, norm_eps) if qk_norm else None
        self.proj = nn.Linear(n_heads * D, out_dim or dim, bias=bias if out_bias is None else out_bias)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def _heads(self, t: torch.Tensor, n: int) -> torch.Tensor:  # (B, T, n*D) -> (B, n, T, D)
        B, T, _ = t.shape
        return t.view(B, T, n, self.head_dim).transpose(1, 2)

    def _memory_kv(self, memory: torch.Tensor, cache: KVCache | None, layer: int):
        if cache is not None and cache.cross[layer] is not None:
            return cache.cross[layer]
        memo = _MEMORY_KV.get() if cache is None and not torch.is_grad_enabled() else None
        if memo is not None:
            held = memo.get((id(self), id(memory)))
            if held is not None and held[0] is memory:
                return held[1]
        k, v = self.kv(memory).chunk(2, dim=-1)  # (B, S, KV*D) each
        kv = (self._heads(k, self.n_kv_heads), self._heads(v, self.n_kv_heads))
        if self.k_norm is not None:
            kv = (self.k_norm(kv[0]), kv[1])
        if cache is not None:
            cache.cross[layer] = kv
        if memo is not None:
            memo[(id(self), id(memory))] = (memory, kv)  # the memory held: its id is not reused while the memo lives
        return kv

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, C) -> q (B, H, T, D), k and v (B, KV, T, D), q/k normed when the model has q/k norms."""
        H, KV, D = self.n_heads, self.n_kv_heads, self.head_dim
        return self._split_heads(*self.qkv(x).split([H * D, KV * D, KV * D], dim=-1))

    def _split_heads(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """(B, Tq, H*D), (B, T, KV*D) x 2 -> (B, H, Tq, D), (B, KV, T, D) x 2, q/k normed when the model has q/k
        norms."""
        q, k, v = self._heads(q, self.n_heads), self._heads(k, self.n_kv_heads), self._heads(v, self.n_kv_heads)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        return q, k, v

    def project_kv_last_q(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, C) -> q of the last position only (B, H, 1, D), k and v of every position (B, KV, T, D): for a
        prefill that reads the last query alone, the fused product's query columns run on one row (the key and
        value columns on all T), q/k normed as in `project_qkv`."""
        H, KV, D = self.n_heads, self.n_kv_heads, self.head_dim
        lin = self.qkv
        if type(lin) is not nn.Linear or x.shape[1] == 1:
            q, k, v = self.project_qkv(x)
            return q[:, :, -1:], k, v
        w, b = lin.weight, lin.bias  # (H*D + 2*KV*D, C), bias or None
        q = linear(x[:, -1:], w[:H * D], None if b is None else b[:H * D], lin, "q")  # (B, 1, H*D)
        k, v = linear(x, w[H * D:], None if b is None else b[H * D:], lin, "kv").split([KV * D, KV * D], dim=-1)
        return self._split_heads(q, k, v)

    def forward(self, x: torch.Tensor, ctx: BlockInputs | None = None, **inputs) -> torch.Tensor:
        """x: (B, T, C) -> (B, T, out_dim). Keyword arguments (`is_causal=`, `cache=`, `memory=`...) build the
        `BlockInputs` when no ctx is given."""
        ctx = ctx if ctx is not None else (BlockInputs(**inputs) if inputs else _NO_INPUTS)
        B, T, _ = x.shape
        if self.cross:
            if ctx.memory is None:
                raise ValueError("cross-attention needs `memory` (the encoder output)")
            q = self._heads(self.q(x), self.n_heads)
            if self.q_norm is not None:
                q = self.q_norm(q)
            k, v = self._memory_kv(ctx.memory, ctx.cache, ctx.layer)  # (B, KV, S, D)
            mask, causal = ctx.memory_mask, False
        else:
            q, k, v = self.project_qkv(x)  # (B, H|KV, T, D)
            if ctx.rope is not None:
                q, k = apply_rotary(q, *ctx.rope), apply_rotary(k, *ctx.rope)
            k_index = None
            if ctx.cache is not None:
                k, v, k_index = ctx.cache.update(ctx.layer, k, v)  # (B, KV, S, D)
            mask, causal = ctx.self_mask(T, k_index, self.window)
        dropout = self.dropout if self.training else 0.0
        if mask is None and dropout == 0.0:  # the native kernel where it measures faster (CPU fp32, no grad)
            y = attention(q, k, v, causal=causal)  # (B, H, T, D)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, dropout_p=dropout,
                                               enable_gqa=self.n_kv_heads != self.n_heads)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)
        return self.resid_dropout(self.proj(y))
