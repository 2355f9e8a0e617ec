"""Key/value cache for incremental decoding, preallocated once per generation."""
from __future__ import annotations

import torch


class KVCache:
    """Per-layer keys/values of shape (B, H, max_len, D), allocated on first use.

    `length` counts the positions already written (the same for every layer); the model calls
    `advance(T)` after a forward pass over T new positions. `cross` holds encoder keys/values computed
    once for cross-attention.
    """

    def __init__(self, n_layers: int, max_len: int):
        self.max_len = max_len
        self.length = 0
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers
        self.cross: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layers
        self._spare_k: list[torch.Tensor | None] = [None] * n_layers  # reorder targets, swapped in per step
        self._spare_v: list[torch.Tensor | None] = [None] * n_layers

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write new (B, H, T, D) keys/values at the current offset; return all keys/values so far."""
        B, H, T, D = k.shape
        s = self.length
        if s + T > self.max_len:
            raise ValueError(f"KV cache overflow: {s} cached + {T} new positions > max_len {self.max_len}")
        if self.k[layer] is None:
            self.k[layer] = k.new_zeros(B, H, self.max_len, D)
            self.v[layer] = v.new_zeros(B, H, self.max_len, D)
        self.k[layer][:, :, s:s + T] = k
        self.v[layer][:, :, s:s + T] = v
        return self.k[layer][:, :, :s + T], self.v[layer][:, :, :s + T]

    def advance(self, n: int) -> None:
        self.length += n

    def write_rows(self, part: "KVCache", rows: torch.Tensor, offset: int, batch_size: int) -> None:
        """Copy the self-attention keys/values of `part` (a cache over len(rows) rows) into batch rows
        `rows` at positions offset..offset+part.length of this cache (allocated for `batch_size` rows on
        first use). Used to prefill left-padded prompts without computing their padding."""
        n = part.length
        if offset + n > self.max_len:
            raise ValueError(f"KV cache overflow: offset {offset} + {n} positions > max_len {self.max_len}")
        for store, src in ((self.k, part.k), (self.v, part.v)):
            for i, t in enumerate(src):
                if t is None:
                    continue
                if store[i] is None:
                    store[i] = t.new_zeros(batch_size, t.shape[1], self.max_len, t.shape[3])
                store[i][rows, :, offset:offset + n] = t[:, :, :n]

    def reorder(self, index: torch.Tensor, cross: bool = True) -> None:
        """Select batch rows (beam search): `index` is (B',) into the batch dimension. `cross=False` keeps
        the encoder keys/values as they are (valid when every row of a group shares one source, as the
        beams of one sentence do, and `index` only permutes rows within their group)."""
        n = self.length  # only the written prefix moves; positions past it are overwritten before use
        for store, spares in ((self.k, self._spare_k), (self.v, self._spare_v)):
            for i, t in enumerate(store):
                if t is None:
                    continue
                if len(index) == t.shape[0]:  # beams re-ranked: gather into a spare buffer and swap (one copy)
                    spare = spares[i]
                    if spare is None or spare.shape != t.shape:
                        spare = torch.empty_like(t)
                    torch.index_select(t[:, :, :n], 0, index, out=spare[:, :, :n])  # (B, H, n, D)
                    store[i], spares[i] = spare, t
                else:  # rows dropped (finished sequences): a smaller buffer
                    store[i] = t.new_zeros(len(index), *t.shape[1:])
                    store[i][:, :, :n] = t[:, :, :n].index_select(0, index)
                    spares[i] = None
        if cross:
            self.cross = [None if c is None else (c[0].index_select(0, index), c[1].index_select(0, index))
                          for c in self.cross]
