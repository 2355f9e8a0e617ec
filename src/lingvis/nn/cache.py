"""Key/value cache for incremental decoding, preallocated once per generation."""
from __future__ import annotations

from collections.abc import Sequence

import torch


class KVCache:
    """Per-layer keys/values of shape (B, H, capacity, D), allocated on first use.

    `length` counts the columns already written (the same for every layer); the model calls `advance(T)`
    after a forward pass over T new positions. `cross` holds encoder keys/values computed once for
    cross-attention. A layer with a sliding window (`windows[i]` smaller than `max_len`) keeps a ring buffer
    of `window` columns that never grows: column c lives in slot c % window, and `update` tells attention
    which column each returned key holds, so the mask can follow (keys are rotated, which attention does
    not mind: softmax runs over a set).
    """

    def __init__(self, n_layers: int, max_len: int, windows: Sequence[int | None] | int | None = None):
        self.max_len = max_len
        self.length = 0
        if windows is None or isinstance(windows, int):
            windows = [windows] * n_layers
        if len(windows) != n_layers:
            raise ValueError(f"{len(windows)} windows for {n_layers} layers")
        # ring capacity per layer (None = a plain cache of max_len columns)
        self.ring: list[int | None] = [w if w is not None and w < max_len else None for w in windows]
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers
        self.index: list[torch.Tensor | None] = [None] * n_layers  # ring layers: (W,) column held by each slot
        self.cross: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layers
        self._spare_k: list[torch.Tensor | None] = [None] * n_layers  # reorder targets, swapped in per step
        self._spare_v: list[torch.Tensor | None] = [None] * n_layers

    @property
    def has_ring(self) -> bool:
        return any(r is not None for r in self.ring)

    def holds_unwrapped(self, n: int) -> bool:
        """True when n columns fit every layer without a ring wrapping (so columns map to slots 1:1)."""
        return all(r is None or n <= r for r in self.ring)

    def capacity(self, layer: int) -> int:
        return self.ring[layer] or self.max_len

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Write new (B, H, T, D) keys/values at the current column; return the keys/values to attend over
        and, for a ring layer that has wrapped, the (S',) absolute column of each (None: columns 0..S-1)."""
        B, H, T, D = k.shape
        s = self.length
        if s + T > self.max_len:
            raise ValueError(f"KV cache overflow: {s} cached + {T} new positions > max_len {self.max_len}")
        W = self.ring[layer]
        if self.k[layer] is None:
            self.k[layer] = k.new_zeros(B, H, W or self.max_len, D)
            self.v[layer] = v.new_zeros(B, H, W or self.max_len, D)
            if W is not None:
                self.index[layer] = torch.full((W,), -1, dtype=torch.long, device=k.device)
        if W is None or s + T <= W:  # plain, or a ring that has not wrapped yet
            self.k[layer][:, :, s:s + T] = k
            self.v[layer][:, :, s:s + T] = v
            if W is not None:
                self.index[layer][s:s + T] = torch.arange(s, s + T, device=k.device)
            return self.k[layer][:, :, :s + T], self.v[layer][:, :, :s + T], None
        ring_k, ring_v, index = self.k[layer], self.v[layer], self.index[layer]
        cols = torch.arange(s, s + T, device=k.device)  # (T,)
        if T == 1:  # decoding: overwrite the column that just left the window, attend over the ring
            slot = s % W
            ring_k[:, :, slot:slot + 1] = k
            ring_v[:, :, slot:slot + 1] = v
            index[slot] = s
            return ring_k, ring_v, index
        # a chunk: attend over what the ring holds plus the whole chunk, then keep the chunk's last W columns
        keys, values = torch.cat([ring_k, k], dim=2), torch.cat([ring_v, v], dim=2)  # (B, H, W + T, D)
        k_index = torch.cat([index, cols])
        keep = min(T, W)
        slots = cols[-keep:] % W
        ring_k[:, :, slots] = k[:, :, -keep:]
        ring_v[:, :, slots] = v[:, :, -keep:]
        index[slots] = cols[-keep:]
        return keys, values, k_index

    def advance(self, n: int) -> None:
        self.length += n

    def write_rows(self, part: "KVCache", rows: torch.Tensor, offset: int, batch_size: int) -> None:
        """Copy the self-attention keys/values of `part` (a cache over len(rows) rows) into batch rows
        `rows` at positions offset..offset+part.length of this cache (allocated for `batch_size` rows on
        first use). Used to prefill left-padded prompts without computing their padding."""
        n = part.length
        if any(r is not None and offset + n > r for r in self.ring):
            raise ValueError("write_rows: the rows would wrap a sliding-window ring; prefill them padded")
        if offset + n > self.max_len:
            raise ValueError(f"KV cache overflow: offset {offset} + {n} positions > max_len {self.max_len}")
        for store, src in ((self.k, part.k), (self.v, part.v)):
            for i, t in enumerate(src):
                if t is None:
                    continue
                if store[i] is None:
                    store[i] = t.new_zeros(batch_size, t.shape[1], self.capacity(i), t.shape[3])
                    if self.ring[i] is not None:
                        self.index[i] = torch.full((self.ring[i],), -1, dtype=torch.long, device=t.device)
                store[i][rows, :, offset:offset + n] = t[:, :, :n]
                if self.ring[i] is not None:
                    self.index[i][:offset + n] = torch.arange(offset + n, device=t.device)

    def reorder(self, index: torch.Tensor, cross: bool = True) -> None:
        """Select batch rows (beam search): `index` is (B',) into the batch dimension. `cross=False` keeps
        the encoder keys/values as they are (valid when every row of a group shares one source, as the
        beams of one sentence do, and `index` only permutes rows within their group)."""
        n_all = self.length  # only the written prefix moves; positions past it are overwritten before use
        for store, spares in ((self.k, self._spare_k), (self.v, self._spare_v)):
            for i, t in enumerate(store):
                if t is None:
                    continue
                n = min(n_all, t.shape[2])  # a ring holds at most its capacity
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
