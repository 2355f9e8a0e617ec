"""Pack a token-id stream into fixed-length blocks for causal language modelling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from lingvis.tokenizers.base import Tokenizer


class PackedLMDataset(Dataset):
    """Contiguous, non-overlapping blocks of a 1-D id stream; the ragged tail is dropped.

    Item ``i`` is ``{"input_ids": ids[i*T : i*T+T], "labels": ids[i*T+1 : i*T+T+1]}`` (both ``(T,)``),
    so ``labels[t]`` is the token that follows ``input_ids[t]``.
    """

    def __init__(self, ids: torch.Tensor | Sequence[int], block_size: int):
        ids = torch.as_tensor(ids)
        if ids.dim() != 1:
            raise ValueError(f"ids must be a 1-D token stream, got shape {tuple(ids.shape)}")
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise TypeError(f"ids must be integer token ids, got dtype {ids.dtype}")
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        if ids.numel() < block_size + 1:
            raise ValueError(
                f"token stream has {ids.numel()} tokens but block_size={block_size} needs at least "
                f"{block_size + 1} (block_size + 1 for the shifted labels)"
            )
        self.ids = ids.long()  # (N,)
        self.block_size = block_size
        self._n_blocks = (ids.numel() - 1) // block_size

    def __len__(self) -> int:
        return self._n_blocks

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self._n_blocks <= index < self._n_blocks:
            raise IndexError(f"block index {index} out of range for {self._n_blocks} blocks")
        index %= self._n_blocks
        start = index * self.block_size
        chunk = self.ids[start : start + self.block_size + 1]  # (T+1,)
        return {"input_ids": chunk[:-1], "labels": chunk[1:]}  # (T,), (T,)


def encode_documents(
    tokenizer: Tokenizer, documents: Sequence[str], append_eos: bool = True
) -> torch.Tensor:
    """Tokenize documents into one ``(N,)`` long stream, an EOS id after each document.

    The EOS separator marks document boundaries, so a packed block never silently joins two texts.
    """
    if isinstance(documents, str):
        documents = [documents]
    if append_eos and tokenizer.eos_id is None:
        raise ValueError("tokenizer has no eos token; pass append_eos=False or use one with an eos role")
    pieces = []
    for ids in tokenizer.encode_batch(list(documents)):
        pieces.append(torch.tensor(ids, dtype=torch.long))
        if append_eos:
            pieces.append(torch.tensor([tokenizer.eos_id], dtype=torch.long))
    if not pieces:
        return torch.empty(0, dtype=torch.long)
    return torch.cat(pieces)  # (N,)
