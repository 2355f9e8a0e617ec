"""The prefill that generation needs from a GPT-family LM: keys/values of every prompt position in the KV
cache and the logits of the last position only.

`GPT.forward(..., last_only=True)` runs every block on every position and drops all but the last one before
the head. Nothing after the last block's keys and values is read for earlier positions, though: its
attention output projection, its MLP and the final norm are needed only at the last position. So this
prefill runs the blocks before the last as usual, and the last block as: keys and values of every position
(into the cache) and the query of the last position only (`Attention.project_kv_last_q`: the fused product's
query columns on one row), then attention, projection and MLP for the last query alone (which sees every key:
no mask). For LLaVA's benchmark LM (8 layers, 220 prompt positions) that skips a tenth of the prefill's
matrix products. Same modules, same ops; the last position's values equal the full forward's to float
rounding (one row through the matrix products instead of a block of rows).

`applies(lm, cache, ...)` says when it may run: the GPT layout the fused decode step supports
(`decode_step.supports`: pre-norm attention + MLP blocks with a fused qkv, no cross-attention or token shift,
no sliding-window ring), an empty cache, no padding mask or custom positions, and no gradient; and not
with `LINGVIS_LAST_PREFILL=0` (the full forward, for A/B runs).
"""
from __future__ import annotations

import os

import torch

from ..decode_step import supports
from ..nn import BlockInputs, KVCache
from ..nn.context import entry_norm
from ..nn.fast_attention import attention
from ..nn.position import apply_rotary


def applies(lm, cache: KVCache | None, attention_mask: torch.Tensor | None, position_ids: torch.Tensor | None,
            attn_mask: torch.Tensor | None = None) -> bool:
    """Whether `prefill_last` may replace `lm(inputs_embeds=x, cache=cache, last_only=True)`."""
    return (os.environ.get("LINGVIS_LAST_PREFILL", "1") != "0" and cache is not None and cache.length == 0
            and attention_mask is None and position_ids is None and attn_mask is None and not torch.is_grad_enabled()
            and supports(lm, cache))


def prefill_last(lm, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """(B, T, C) prompt embeddings -> (B, 1, V) logits of the last position; the cache then holds T columns."""
    B, T, _ = x.shape
    if T > lm.config.block_size or T > cache.max_len:
        limit = min(lm.config.block_size, cache.max_len)
        raise ValueError(f"sequence of {T} tokens exceeds the context length {limit}")
    x, rope = lm.add_positions(x, torch.arange(T, device=x.device)[None].expand(B, T))  # rope: (B, 1, T, D) each
    ctx = BlockInputs(is_causal=True, cache=cache, rope=rope)
    x = lm.drop(x)
    *first, blk = lm.blocks
    for i, block in enumerate(first):
        ctx.layer = i
        ctx.next_norm = entry_norm(first[i + 1]) if i + 1 < len(first) else blk.ln_1  # see run_blocks
        x = block(x, ctx)  # (B, T, C)
    normed = ctx.normed  # (x, blk.ln_1(x)) when the last residual add was made with it
    ctx.next_norm = ctx.normed = None
    a = blk.attn
    h = normed[1] if normed is not None and normed[0] is x else blk.ln_1(x)  # (B, T, C)
    q, k, v = a.project_kv_last_q(h)  # (B, H, 1, D): only the last query is read; (B, KV, T, D) each
    if rope is not None:
        cos, sin = rope
        q, k = apply_rotary(q, cos[:, :, -1:], sin[:, :, -1:]), apply_rotary(k, cos, sin)
    k, v, _ = cache.update(len(first), k, v)  # (B, KV, T, D)
    y = attention(q, k, v)  # (B, H, 1, D)
    h = x[:, -1:] + a.proj(y.transpose(1, 2).reshape(B, 1, a.n_heads * a.head_dim))  # (B, 1, C)
    h = h + blk.mlp(blk.ln_2(h), ctx)
    cache.advance(T)
    return lm.lm_head(lm.ln_f(h))  # (B, 1, V)
