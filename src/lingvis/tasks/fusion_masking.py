"""Batch corruption for fusion pretraining: random image-grid masking and hard negative captions drawn
from the batch (token masking is BERT's `lingvis.data.mlm.MLMCollator`). Randomness comes from torch's
global RNG, which the trainer seeds and restores on resume."""
from __future__ import annotations

from collections.abc import Sequence

import torch


def mask_image_grid(batch: int, grid_tokens: int, prob: float) -> torch.Tensor:
    """(B, N) bool: each grid token masked with probability `prob` (at least one per image)."""
    m = torch.rand(batch, grid_tokens) < prob
    first = torch.randint(0, grid_tokens, (batch,))
    m[torch.arange(batch), first] = True
    return m


def hard_negatives(ids: torch.Tensor, attention_mask: torch.Tensor, image_keys: Sequence, prob: float,
                   temperature: float = 0.1, hard_fraction: float = 1.0) -> torch.Tensor:
    """(B,) index of the caption each image is paired with instead of its own, or -1 (kept positive).
    About `prob` of the images get a negative: a caption of another image in the batch. A `hard_fraction`
    of them is sampled with weight exp(jaccard(token sets) / temperature), so captions sharing most words
    dominate; the rest uniformly (easy negatives). Captions of the same image and identical captions are
    never used as negatives."""
    B, V = ids.shape[0], int(ids.max()) + 1
    real = attention_mask.bool()
    bags = torch.zeros(B, V)
    bags[torch.arange(B)[:, None].expand_as(ids)[real], ids[real]] = 1.0  # (B, V) token sets
    inter = bags @ bags.T  # (B, B)
    sizes = bags.sum(1)
    jacc = inter / (sizes[:, None] + sizes[None, :] - inter).clamp(min=1)
    keys = list(image_keys)
    same = torch.tensor([[keys[i] == keys[j] for j in range(B)] for i in range(B)])
    texts = [tuple(r[m.bool()].tolist()) for r, m in zip(ids, attention_mask)]
    same |= torch.tensor([[texts[i] == texts[j] for j in range(B)] for i in range(B)])
    hard = (torch.rand(B) < hard_fraction)[:, None]  # rows that get a hard negative
    logits = torch.where(hard, jacc / temperature, torch.zeros_like(jacc)).masked_fill(same, float("-inf"))
    want = torch.rand(B) < prob
    swap = torch.full((B,), -1, dtype=torch.long)
    for i in torch.nonzero(want & torch.isfinite(logits).any(1)).flatten().tolist():
        swap[i] = torch.multinomial(logits[i].softmax(-1), 1).item()
    return swap
