"""Block-diagonal causal attention for packed rows: each token attends only to earlier tokens of its own
document (conversation), so packing several conversations into one row changes none of their outputs. The
causal LM takes the mask as `attn_mask` (with `position_ids` restarting per document);
`tests/tasks/test_chat_sft.py` checks that a packed row gives each conversation exactly the logits it gets
alone."""
from __future__ import annotations

import torch


def document_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) document ids (-1 = padding) -> (B, 1, T, T) bool: same document and not in the future.
    Padding queries see the other padding keys, so no row of the mask is empty."""
    T = doc_ids.shape[1]
    same = doc_ids[:, :, None] == doc_ids[:, None, :]  # (B, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=doc_ids.device).tril()
    return (same & causal)[:, None]  # (B, 1, T, T)
