"""A text tower that does no language modelling: each token id maps to a fixed random vector (no positions, no
mixing), so a prompt's states name its words exactly and their mean is an exact bag-of-words code. The
text-to-image conditioning diagnostic uses it as an "oracle" tower (docs/text_to_image.md, fifth session): if a
denoiser does not follow a word that reaches it this plainly, the gap is drawing, not the text path."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .registry import register_family


@dataclass
class WordBagTextConfig:
    vocab_size: int = 256
    context_length: int = 24
    dim: int = 128
    scale: float = 1.0   # std of the fixed random word vectors
    seed: int = 0        # their generator seed (the vectors are a buffer-like frozen parameter)

    def __post_init__(self):
        if self.vocab_size < 1 or self.context_length < 1 or self.dim < 1:
            raise ValueError(f"vocab_size, context_length and dim must be >= 1, got {self.vocab_size}, "
                             f"{self.context_length}, {self.dim}")

    @property
    def out_dim(self) -> int:
        return self.dim


class WordBagText(nn.Module):
    """`encode(input_ids (B, T), attention_mask) -> (B, T, D)`: the ids' fixed random vectors, nothing else."""

    def __init__(self, config: WordBagTextConfig):
        super().__init__()
        self.config = c = config
        g = torch.Generator().manual_seed(c.seed)
        self.tok_emb = nn.Embedding(c.vocab_size, c.dim)
        with torch.no_grad():
            self.tok_emb.weight.copy_(torch.randn(c.vocab_size, c.dim, generator=g) * c.scale)
        self.tok_emb.requires_grad_(False)

    @property
    def out_dim(self) -> int:
        return self.config.dim

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        # input_ids: (B, T); the mask is not needed (no mixing across positions)
        if input_ids.shape[1] > self.config.context_length:
            raise ValueError(f"text of {input_ids.shape[1]} tokens exceeds the context length "
                             f"{self.config.context_length}")
        return self.tok_emb(input_ids)  # (B, T, D)


register_family("word_bag_text", WordBagTextConfig, WordBagText, "fixed random word vectors, no mixing (the "
                "exact-conditioning diagnostic tower)")
