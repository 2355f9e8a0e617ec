"""Heads shared by the encoder families (BERT, fusion)."""
from __future__ import annotations

import torch
from torch import nn

from ..nn.mlp import ACTIVATIONS


class MLMHead(nn.Module):
    """dense -> activation -> LayerNorm -> decoder (weight tied to the word embeddings) + bias. The output bias
    is a separate `bias` parameter (BERT's layout) or the decoder's own (`decoder_bias=True`, ViLT's layout)."""

    def __init__(self, dim: int, vocab_size: int, activation: str, eps: float, decoder_bias: bool = False):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown MLM head activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        self.act = ACTIVATIONS[activation]
        self.dense = nn.Linear(dim, dim)
        self.ln = nn.LayerNorm(dim, eps=eps)
        self.decoder = nn.Linear(dim, vocab_size, bias=decoder_bias)
        self.bias = None if decoder_bias else nn.Parameter(torch.zeros(vocab_size))

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # (..., C) -> (..., V)
        out = self.decoder(self.ln(self.act(self.dense(h))))
        return out if self.bias is None else out + self.bias
