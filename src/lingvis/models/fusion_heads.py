"""Heads on the fusion stack: pooler, masked LM (image-conditioned), image-text matching, masked
image-feature regression and the VQA answer classifier (HF ViLT layouts)."""
from __future__ import annotations

import torch
from torch import nn



class Pooler(nn.Module):
    """tanh(dense(h)) with h the text [CLS] token (`cls`, ViLT/BERT) or the mean of the real text tokens
    (`text_mean`: every question word feeds the heads directly, one attention hop fewer)."""

    def __init__(self, dim: int, mode: str = "cls"):
        super().__init__()
        if mode not in ("cls", "text_mean"):
            raise ValueError(f"pool must be 'cls' or 'text_mean', got {mode!r}")
        self.mode = mode
        self.dense = nn.Linear(dim, dim)

    def forward(self, hidden: torch.Tensor, text_mask: torch.Tensor) -> torch.Tensor:
        # hidden (B, S, C) with the text first; text_mask (B, T) -> (B, C)
        if self.mode == "cls":
            return torch.tanh(self.dense(hidden[:, 0]))
        m = text_mask[..., None].to(hidden.dtype)  # (B, T, 1)
        h = (hidden[:, :text_mask.shape[1]] * m).sum(1) / m.sum(1).clamp(min=1)
        return torch.tanh(self.dense(h))


def vqa_classifier(dim: int, n_answers: int, eps: float, in_dim: int | None = None) -> nn.Sequential:
    """ViLT's VQA head: Linear(C_in, 2C) -> LayerNorm -> GELU -> Linear(2C, A) (indices 0, 1, 3 as in HF);
    C_in = `in_dim` (default C, the pooled vector)."""
    return nn.Sequential(nn.Linear(in_dim or dim, 2 * dim), nn.LayerNorm(2 * dim, eps=eps), nn.GELU(),
                         nn.Linear(2 * dim, n_answers))
