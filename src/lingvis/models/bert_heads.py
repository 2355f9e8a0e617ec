"""BERT task heads (names follow the layout of Google's BERT so import is a short rename list)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .heads import MLMHead  # noqa: F401  (re-exported: BERT's MLM head)

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


class QAHead(nn.Module):
    """Span start/end scores per token."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, 2)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, T, C) -> 2 x (B, T)
        start, end = self.proj(h).unbind(dim=-1)
        return start.contiguous(), end.contiguous()
