"""The one Transformer block every lingvis family reuses."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import Attention
from .cache import KVCache
from .mlp import MLP
from .norm import make_norm


@dataclass
class BlockConfig:
    dim: int
    n_heads: int
    mlp_hidden: int
    activation: str = "gelu"
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    prenorm: bool = True          # pre-norm (GPT-2, ViT, CLIP) or post-norm (BERT, original Transformer)
    bias: bool = True
    dropout: float = 0.0
    cross_attention: bool = False  # decoder blocks attend to an encoder output
    cross_dim: int | None = None


class Block(nn.Module):
    """Self-attention, optional cross-attention, MLP; each a residual branch with its own norm."""

    def __init__(self, cfg: BlockConfig):
        super().__init__()
        self.prenorm = cfg.prenorm
        self.ln_1 = make_norm(cfg.norm, cfg.dim, cfg.norm_eps, cfg.bias)
        self.attn = Attention(cfg.dim, cfg.n_heads, cfg.bias, cfg.dropout)
        if cfg.cross_attention:
            self.ln_cross = make_norm(cfg.norm, cfg.dim, cfg.norm_eps, cfg.bias)
            self.cross_attn = Attention(cfg.dim, cfg.n_heads, cfg.bias, cfg.dropout, cross=True,
                                        kv_dim=cfg.cross_dim or cfg.dim)
        else:
            self.ln_cross = self.cross_attn = None
        self.ln_2 = make_norm(cfg.norm, cfg.dim, cfg.norm_eps, cfg.bias)
        self.mlp = MLP(cfg.dim, cfg.mlp_hidden, cfg.activation, cfg.bias, cfg.dropout)

    def _branch(self, x, norm, fn):
        if self.prenorm:
            return x + fn(norm(x))
        return norm(x + fn(x))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False,
                rope=None, cache: KVCache | None = None, layer: int = 0,
                memory: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, T, C); memory: (B, S, C_mem)
        x = self._branch(x, self.ln_1, lambda h: self.attn(h, attn_mask, is_causal, rope, cache, layer))
        if self.cross_attn is not None:
            x = self._branch(x, self.ln_cross,
                             lambda h: self.cross_attn(h, memory_mask, cache=cache, layer=layer, memory=memory))
        return self._branch(x, self.ln_2, self.mlp)
