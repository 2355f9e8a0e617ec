"""Token shift for encoders: each token's embedding gains a learned projection of its left and right
neighbours' (RWKV's token shift, ConvBERT's local mixing, made bidirectional), so a masked token's state
carries both neighbours before any attention has learned to find them by position."""
from __future__ import annotations

import torch
from torch import nn


class TokenShift(nn.Module):
    """x + W [x_{t-1}; x_{t+1}]: `forward(x (B, T, C), group (B, T))`. A neighbour counts only when it has the
    same `group` id (padding and the other sequences of a packed row are left out); missing ones are zeros."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(2 * dim, dim)

    def forward(self, x: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        zero = torch.zeros_like(x[:, :1])  # (B, 1, C)
        left = torch.cat([zero, x[:, :-1]], dim=1)  # (B, T, C): x_{t-1}
        right = torch.cat([x[:, 1:], zero], dim=1)  # (B, T, C): x_{t+1}
        none = torch.full_like(group[:, :1], -1)  # (B, 1)
        same_left = group == torch.cat([none, group[:, :-1]], dim=1)  # (B, T)
        same_right = group == torch.cat([group[:, 1:], none], dim=1)  # (B, T)
        left = left * same_left.unsqueeze(-1).to(x.dtype)
        right = right * same_right.unsqueeze(-1).to(x.dtype)
        return x + self.proj(torch.cat([left, right], dim=-1))  # (B, T, C)


def token_groups(attention_mask: torch.Tensor | None, B: int, T: int, device) -> torch.Tensor:
    """(B, T) group ids for `TokenShift`: 0 for real tokens, -1 for padding (its neighbours then differ)."""
    if attention_mask is None:
        return torch.zeros(B, T, dtype=torch.long, device=device)
    return torch.where(attention_mask.bool(), 0, -1).to(torch.long)
