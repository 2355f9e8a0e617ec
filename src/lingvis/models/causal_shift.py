"""Causal token shift ("smear") for decoders: each token's embedding gains a gated, learned projection of the
embeddings of the `k` tokens before it (RWKV's token shift, modded-nanogpt's smear, a short causal
convolution), so a position already holds its left neighbours' identities before any attention has learned
to find them by position. Induction-style look-ups (find the earlier occurrence of a token, copy what follows
it) then need one attention hop fewer.

Neighbours count only inside the same document: a previous token j steps back is used only when the
position id is >= j (packed rows restart their positions; left padding gives the first real token position 0).
With a KV cache the embeddings of the columns already seen are kept in one extra cache layer (keys and values
of shape (B, 1, S, C)), so decoding one token at a time sees the same neighbours as a full forward pass,
and the cache's prefill, beam reorder and rollback move them with the keys and values.
"""
from __future__ import annotations

import torch
from torch import nn

from ..nn import KVCache


class CausalTokenShift(nn.Module):
    """x_t + sum_j sigmoid(g_j . x_t) W_j x_{t-j}, j = 1..k: `forward(x (B, T, C), position_ids (B, T),
    cache, layer)`; `layer` is the cache slot that carries the embeddings (the decoder's layer count)."""

    def __init__(self, dim: int, k: int = 1):
        super().__init__()
        if k < 1:
            raise ValueError(f"token shift needs k >= 1 previous tokens, got {k}")
        self.k = k
        self.proj = nn.Linear(k * dim, dim, bias=False)
        self.gate = nn.Linear(dim, k)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor, cache: KVCache | None = None,
                layer: int | None = None) -> torch.Tensor:
        B, T, C = x.shape
        past = 0
        full = x  # (B, S, C): every column's embedding so far
        if cache is not None:
            past = cache.length
            held, _, index = cache.update(layer, x[:, None], x[:, None])  # (B, 1, S, C)
            if index is not None:
                raise ValueError("the token-shift cache layer must not be a sliding-window ring")
            full = held[:, 0]
        full = torch.cat([full.new_zeros(B, self.k, C), full], dim=1)  # (B, k + S, C): zeros before column 0
        start = self.k + past
        prev = [full[:, start - j:start - j + T] * (position_ids >= j).unsqueeze(-1).to(x.dtype)
                for j in range(1, self.k + 1)]  # k x (B, T, C): x_{t-j}, zero across a document start
        gates = torch.sigmoid(self.gate(x))  # (B, T, k)
        mixed = torch.cat([p * gates[..., j - 1:j] for j, p in enumerate(prev, 1)], dim=-1)  # (B, T, k*C)
        return x + self.proj(mixed)  # (B, T, C)
