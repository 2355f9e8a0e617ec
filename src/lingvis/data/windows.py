"""Overlapping training windows of a token stream: every `stride`-th start position, not only the
non-overlapping blocks of `PackedLMDataset`. With stride 1 a shuffled epoch visits every offset once
(nanoGPT draws random offsets the same way, with replacement), so short runs over a small corpus see
more varied contexts than the same blocks repeated."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset


class WindowLMDataset(Dataset):
    """Item ``i`` is ``{"input_ids": ids[s : s+T], "labels": ids[s+1 : s+T+1]}`` with ``s = i * stride``."""

    def __init__(self, ids: torch.Tensor | Sequence[int], block_size: int, stride: int = 1):
        ids = torch.as_tensor(ids)
        if ids.dim() != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise ValueError(f"ids must be a 1-D integer token stream, got {ids.dtype} of shape {tuple(ids.shape)}")
        if block_size < 1 or stride < 1:
            raise ValueError(f"block_size and stride must be >= 1, got {block_size} and {stride}")
        if ids.numel() < block_size + 1:
            raise ValueError(f"token stream has {ids.numel()} tokens but block_size={block_size} needs at least "
                             f"{block_size + 1} (block_size + 1 for the shifted labels)")
        self.ids, self.block_size, self.stride = ids.long(), block_size, stride  # (N,)
        self._n = (ids.numel() - block_size - 1) // stride + 1

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self._n <= index < self._n:
            raise IndexError(f"window index {index} out of range for {self._n} windows")
        start = (index % self._n) * self.stride
        chunk = self.ids[start: start + self.block_size + 1]  # (T+1,)
        return {"input_ids": chunk[:-1], "labels": chunk[1:]}  # (T,), (T,)
