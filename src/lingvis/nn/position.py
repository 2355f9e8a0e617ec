"""Position encodings: learned table, sinusoidal table, rotary (RoPE)."""
from __future__ import annotations

import math

import torch
from torch import nn


class LearnedPositions(nn.Module):
    """A trainable table of `max_len` position vectors."""

    def __init__(self, max_len: int, dim: int):
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.zeros(max_len, dim))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, C)
        return self.weight[position_ids]


def sinusoidal_table(max_len: int, dim: int, interleave: bool = False) -> torch.Tensor:
    """(max_len, dim) table of "Attention Is All You Need". `interleave=False` puts all sines in the first
    half and all cosines in the second (fairseq/Marian layout); `True` alternates sin, cos per pair."""
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]  # (L, 1)
    half = dim // 2
    inv = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)  # (D/2,)
    if interleave:
        inv = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    ang = pos * inv  # (L, D/2)
    if interleave:
        table = torch.zeros(max_len, dim)
        table[:, 0::2], table[:, 1::2] = torch.sin(ang), torch.cos(ang)
        return table
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)  # (L, D)


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal positions (not saved in checkpoints)."""

    def __init__(self, max_len: int, dim: int, interleave: bool = False):
        super().__init__()
        self.max_len = max_len
        self.register_buffer("table", sinusoidal_table(max_len, dim, interleave), persistent=False)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, C)
        return self.table[position_ids]


class Rotary(nn.Module):
    """Rotary position embedding (rotate-half convention). Returns (cos, sin) for given positions."""

    def __init__(self, head_dim: int, max_len: int, theta: float = 10000.0):
        super().__init__()
        self.max_len = max_len
        inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (D/2,)
        ang = torch.outer(torch.arange(max_len, dtype=torch.float32), inv)  # (L, D/2)
        emb = torch.cat([ang, ang], dim=-1)  # (L, D)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # (B, T) -> two (B, 1, T, D) tensors broadcastable over heads
        return self.cos[position_ids][:, None], self.sin[position_ids][:, None]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, T, D) queries or keys by their positions."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin
