"""A key/value cache for a batch whose rows come and go (continuous batching).

All rows share one write column (`length`), so one forward pass over a (B, 1) step serves every row. Row i
holds its tokens, contiguous, in columns [start_i, length): shorter rows are left-padded and the padding is
masked out. A joining row is prefilled on its own (or with the other new arrivals) and spliced in so that
its prompt ends at the shared column; columns that no row uses any more are dropped at each join.
"""
from __future__ import annotations

import torch

from ..nn import KVCache


class BatchKV:
    """Layout bookkeeping plus the model's `KVCache` whose tensors are rebuilt on join/leave."""

    def __init__(self, model, context: int):
        self.model, self.context = model, context
        self.cache: KVCache | None = None
        self.starts: list[int] = []

    @property
    def length(self) -> int:
        return self.cache.length if self.cache is not None else 0

    @property
    def size(self) -> int:
        return len(self.starts)

    def _plan(self, new_width: int, new_lens: list[int]) -> tuple[int, list[int], int]:
        """Shared length after a join, starts of all rows, and the columns dropped on the left."""
        L = max(self.length, new_width)
        shift = L - self.length
        starts = [s + shift for s in self.starts] + [L - n for n in new_lens]
        drop = min(starts) if starts else 0
        return L - drop, [s - drop for s in starts], drop

    def fits(self, new_width: int, new_lens: list[int], remaining: list[int]) -> bool:
        """Would rows of `new_lens` prompt tokens (prefilled together, `new_width` wide) fit, given each
        row's (existing then new) remaining decode steps?"""
        L, _, _ = self._plan(new_width, new_lens)
        return L + max(remaining, default=0) <= self.context

    def join(self, prefill: KVCache, new_lens: list[int], remaining: list[int]) -> None:
        """Splice `prefill` (rows left-padded to its length) after the current rows. `remaining` lists
        the decode steps each row (existing, then new) may still take: it sizes the buffer."""
        width = prefill.length
        L, starts, _ = self._plan(width, new_lens)
        cap = max(L + max(remaining, default=0), L + 1)
        if cap > self.context:
            raise ValueError(f"batch cache needs {cap} columns, over the context length {self.context}")
        old, B_old, k_new = self.cache, self.size, len(new_lens)
        shift = L - self.length  # old column c lands at c + shift (negative when columns are dropped)
        cache = self.model.new_cache(B_old + k_new, cap)
        for layer in range(len(prefill.k)):
            ref = prefill.k[layer]  # (k, H, width, D)
            _, H, _, D = ref.shape
            for store, src in ((cache.k, prefill.k), (cache.v, prefill.v)):
                buf = ref.new_zeros(B_old + k_new, H, cap, D)  # (B, H, cap, D)
                if old is not None and B_old:
                    lo = max(0, -shift)
                    prev = (old.k if store is cache.k else old.v)[layer]
                    buf[:B_old, :, lo + shift:self.length + shift] = prev[:, :, lo:self.length]
                buf[B_old:, :, L - width:L] = src[layer][:, :, :width]
                store[layer] = buf
        cache.length = L
        self.cache, self.starts = cache, starts

    def keep(self, rows: list[int]) -> None:
        """Keep only `rows` (indices into the current batch), in that order."""
        if len(rows) == self.size:
            return
        self.starts = [self.starts[i] for i in rows]
        if not rows:
            self.cache = None
            return
        self.cache.reorder(torch.tensor(rows, dtype=torch.long, device=self.cache.k[0].device))

    def compact(self) -> None:
        """Drop the columns before the earliest row's start (left after rows left the batch), so that the
        earliest row starts at column 0; positions are unchanged (they count from each row's start)."""
        drop = min(self.starts, default=0)
        if not drop:
            return
        n = self.length - drop
        for store in (self.cache.k, self.cache.v):
            for layer, t in enumerate(store):
                t[:, :, :n] = t[:, :, drop:self.length].clone()  # (B, H, n, D)
        self.cache.length = n
        self.starts = [s - drop for s in self.starts]

    def step_inputs(self, device) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(B, L + 1) attention mask (None when no row is padded) and (B, 1) positions for one new token."""
        L = self.length
        starts = torch.tensor(self.starts, dtype=torch.long, device=device)  # (B,)
        pos = (L - starts)[:, None]  # (B, 1)
        if not any(self.starts):
            return None, pos
        mask = (torch.arange(L + 1, device=device)[None, :] >= starts[:, None]).long()  # (B, L + 1)
        return mask, pos
