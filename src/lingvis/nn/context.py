"""What the sublayers of a block may read during one forward pass: masks, positions, the KV cache, encoder
memory and a conditioning vector. The model fills one `BlockInputs` per forward; every block and sublayer
of the stack reads it (`ctx.layer` is set per block by `run_blocks`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .cache import KVCache
from .masks import causal_mask, combine, padding_mask


@dataclass
class BlockInputs:
    attn_mask: torch.Tensor | None = None    # explicit self-attention mask (B|1, 1|H, T, S), bool or additive
    is_causal: bool = False                  # queries see only keys at or before their own position
    key_mask: torch.Tensor | None = None     # (B, S) 1 = real key over cached + new columns (padding = 0)
    rope: tuple[torch.Tensor, torch.Tensor] | None = None  # (cos, sin), each (B, 1, T, D)
    cache: KVCache | None = None
    layer: int = 0                           # index of the block in its stack (the cache's layer)
    memory: torch.Tensor | None = None       # (B, M, C_mem) encoder output for cross-attention
    memory_mask: torch.Tensor | None = None  # (B, 1, 1, M) bool
    cond: torch.Tensor | None = None         # (B, C_cond) conditioning vector for modulated branches
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. video layout {"frames": F, "patches": N}
    # inference across blocks (`run_blocks`): the next block's entry norm, which a pre-norm block applies together
    # with its last residual add (one native pass), leaving (its output, that output normed) in `normed`
    next_norm: Any = None
    normed: tuple[torch.Tensor, torch.Tensor] | None = None
    _masks: dict = field(default_factory=dict, repr=False)

    def self_mask(self, q_len: int, k_index: torch.Tensor | None = None,
                  window: int | None = None) -> tuple[torch.Tensor | None, bool]:
        """(mask, is_causal) for SDPA: self-attention of `q_len` new queries over the cached + new keys.
        `k_index` (S',): absolute column of each key when the cache returns them out of order (a ring);
        `window`: keys at most `window - 1` columns before the query (sliding-window attention).
        Masks are built once per forward and shared by the layers that need the same one."""
        if k_index is None and window is None:
            key = (q_len, None, None)
            if key not in self._masks:
                self._masks[key] = self._plain(q_len)
            return self._masks[key]
        # ring layers of one window hold the same columns during a forward pass, so their size identifies them
        key = (q_len, None if k_index is None else k_index.numel(), window)
        if key not in self._masks:
            self._masks[key] = self._indexed(q_len, k_index, window)
        return self._masks[key]

    def _past(self) -> int:
        return self.cache.length if self.cache is not None else 0

    def _plain(self, T: int) -> tuple[torch.Tensor | None, bool]:
        if self.attn_mask is not None:
            return self.attn_mask, False
        S = self._past() + T
        dev = self.key_mask.device if self.key_mask is not None else None
        if self.key_mask is not None:
            return combine(causal_mask(T, S, dev) if self.is_causal else None, padding_mask(self.key_mask)), False
        if self.is_causal and S > T and T > 1:
            return causal_mask(T, S, self._device()), False
        return None, self.is_causal and T > 1

    def _indexed(self, T: int, k_index: torch.Tensor | None, window: int | None) -> tuple[torch.Tensor | None, bool]:
        if self.attn_mask is not None:
            raise ValueError("an explicit attention mask cannot be combined with a window or a ring cache")
        past = self._past()
        dev = self._device() if k_index is None else k_index.device
        q = torch.arange(past, past + T, device=dev)[:, None]  # (T, 1) absolute query columns
        k = torch.arange(past + T, device=dev) if k_index is None else k_index  # (S',)
        allowed = k[None, :] >= 0  # (1, S') empty ring slots carry index -1
        if self.is_causal:
            allowed = allowed & (k[None, :] <= q)
        if window is not None:
            allowed = allowed & (q - k[None, :] < window)
        allowed = allowed[None, None]  # (1, 1, T, S')
        if self.key_mask is not None:
            valid = self.key_mask.bool()[:, k.clamp(min=0)]  # (B, S')
            allowed = allowed & valid[:, None, None, :]
        elif bool(allowed.all()):
            return None, False  # every key visible (e.g. a full window during decoding)
        return combine(allowed), False

    def _device(self):
        if self.cache is not None:
            for t in self.cache.k:
                if t is not None:
                    return t.device
        if self.rope is not None:
            return self.rope[0].device
        return None


def run_blocks(blocks, x: torch.Tensor, ctx: BlockInputs, hidden: list | None = None) -> torch.Tensor:
    """Run a stack of blocks over (B, T, C) states with one shared context; `hidden` collects the input to
    every block plus the final states (HF's `hidden_states`). Advances the cache by T when there is one."""
    if hidden is not None:
        hidden.append(x)
    fuse = not torch.is_grad_enabled()  # inference: each block's last residual add made with the next one's norm
    n = len(blocks)
    for i, block in enumerate(blocks):
        ctx.layer = i
        if fuse:
            ctx.next_norm = entry_norm(blocks[i + 1]) if i + 1 < n else None
        x = block(x, ctx)
        if hidden is not None:
            hidden.append(x)
    ctx.next_norm = ctx.normed = None
    if ctx.cache is not None:
        ctx.cache.advance(x.shape[1])
    return x


def entry_norm(block) -> Any:
    """The norm a block applies first to its input (a pre-norm `Block`'s first branch), or None."""
    get = getattr(block, "entry_norm", None)
    return get() if get is not None else None
