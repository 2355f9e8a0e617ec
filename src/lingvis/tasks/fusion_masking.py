"""Batch corruption for fusion pretraining: BERT-style token masking, random image-grid masking and
hard negative captions drawn from the batch."""
from __future__ import annotations

from collections.abc import Sequence

import torch


def mask_tokens(ids: torch.Tensor, attention_mask: torch.Tensor, mask_id: int, vocab_size: int,
                special: Sequence[int], prob: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: pick `prob` of the real, non-special tokens; of those 80% -> [MASK], 10% -> a random
    token, 10% unchanged. Returns (corrupted ids, labels with -100 where nothing is predicted)."""
    can = attention_mask.bool() & ~torch.isin(ids, torch.tensor(list(special), dtype=ids.dtype))  # (B, T)
    picked = (torch.rand(ids.shape, generator=g) < prob) & can
    labels = torch.where(picked, ids, torch.full_like(ids, -100))
    roll = torch.rand(ids.shape, generator=g)
    out = torch.where(picked & (roll < 0.8), torch.full_like(ids, mask_id), ids)
    rand_tok = torch.randint(0, vocab_size, ids.shape, generator=g)
    out = torch.where(picked & (roll >= 0.8) & (roll < 0.9), rand_tok, out)
    return out, labels


def mask_image_grid(batch: int, grid_tokens: int, prob: float, g: torch.Generator) -> torch.Tensor:
    """(B, N) bool: each grid token masked with probability `prob` (at least one per image)."""
    m = torch.rand(batch, grid_tokens, generator=g) < prob
    first = torch.randint(0, grid_tokens, (batch,), generator=g)
    m[torch.arange(batch), first] = True
    return m


def hard_negatives(ids: torch.Tensor, attention_mask: torch.Tensor, image_keys: Sequence, prob: float,
                   g: torch.Generator, temperature: float = 0.1) -> torch.Tensor:
    """(B,) index of the caption each image is paired with instead of its own, or -1 (kept positive).
    About `prob` of the images get a negative: a caption of another image in the batch, sampled with
    weight exp(jaccard(token sets) / temperature), so captions sharing most words (hard ones) dominate.
    Captions of the same image and identical captions are never used as negatives."""
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
    logits = (jacc / temperature).masked_fill(same, float("-inf"))  # (B, B)
    want = torch.rand(B, generator=g) < prob
    swap = torch.full((B,), -1, dtype=torch.long)
    for i in torch.nonzero(want & torch.isfinite(logits).any(1)).flatten().tolist():
        swap[i] = torch.multinomial(logits[i].softmax(-1), 1, generator=g).item()
    return swap
