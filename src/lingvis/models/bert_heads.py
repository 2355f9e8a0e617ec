"""BERT task heads (names follow the layout of Google's BERT so import is a short rename list)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..nn.mlp import ACTIVATIONS

HEADS = ("none", "mlm", "pretraining", "classify", "tag", "qa")


@dataclass
class BertOutput:
    """What `Bert.forward` returns; fields a head does not produce are None.

    hidden: (B, T, C) last layer; pooled: (B, C) tanh(dense([CLS])); logits: MLM (B, T, V) or (N, V) for
    selected positions, classify (B, L), tag (B, T, L); nsp_logits: (B, 2); start/end_logits: (B, T)."""

    hidden: torch.Tensor
    pooled: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    nsp_logits: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None


class MLMHead(nn.Module):
    """dense -> activation -> LayerNorm -> decoder (weight tied to the word embeddings) + bias."""

    def __init__(self, dim: int, vocab_size: int, activation: str, eps: float):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown MLM head activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        self.act = ACTIVATIONS[activation]
        self.dense = nn.Linear(dim, dim)
        self.ln = nn.LayerNorm(dim, eps=eps)
        self.decoder = nn.Linear(dim, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (..., C) -> (..., V)
        return self.decoder(self.ln(self.act(self.dense(h)))) + self.bias


class QAHead(nn.Module):
    """Span start/end scores per token."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, T, C) -> 2 x (B, T)
        start, end = self.proj(h).unbind(dim=-1)
        return start.contiguous(), end.contiguous()
