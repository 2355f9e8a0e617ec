"""Divided space-time attention (TimeSformer): two sublayers of the shared block that regroup video tokens.

Tokens are laid out (B, C + N*F, D): an optional class token, then patch-major space-time tokens (the F frames
of patch 0, then of patch 1, ...). `ctx.extras` carries the layout: {"frames": F, "patches": N, "cls": 0|1}.
Both sublayers are the shared `Attention` with a different grouping of the tokens, so their weights keep
`qkv` / `proj` names.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import Attention
from .context import BlockInputs

_PLAIN = BlockInputs()


def _layout(ctx: BlockInputs) -> tuple[int, int, int]:
    try:
        return ctx.extras["frames"], ctx.extras["patches"], ctx.extras.get("cls", 1)
    except KeyError as e:
        raise ValueError("space-time attention needs ctx.extras['frames'] and ['patches']") from e


class TemporalAttention(Attention):
    """Each spatial patch attends over its own F frames; the class token is left unchanged (output 0).
    `fc` is TimeSformer's extra projection after the temporal attention."""

    def __init__(self, dim: int, n_heads: int, bias: bool = True, dropout: float = 0.0):
        super().__init__(dim, n_heads, bias, dropout)
        self.fc = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, ctx: BlockInputs | None = None) -> torch.Tensor:
        # x: (B, c + N*F, D) -> (B, c + N*F, D)
        F_, N, c = _layout(ctx)
        B, _, D = x.shape
        patches = x[:, c:].reshape(B * N, F_, D)  # (B*N, F, D): patch-major tokens group by patch
        y = self.fc(super().forward(patches, _PLAIN).reshape(B, N * F_, D))
        return torch.cat([y.new_zeros(B, c, D), y], dim=1) if c else y


class SpatialAttention(Attention):
    """Each frame's N patches (plus the class token, repeated per frame) attend over each other; the class
    token's output is averaged over the frames."""

    def forward(self, x: torch.Tensor, ctx: BlockInputs | None = None) -> torch.Tensor:
        # x: (B, c + N*F, D) -> (B, c + N*F, D)
        F_, N, c = _layout(ctx)
        B, _, D = x.shape
        frames = x[:, c:].reshape(B, N, F_, D).transpose(1, 2).reshape(B * F_, N, D)  # (B*F, N, D)
        if c:
            frames = torch.cat([x[:, :1].repeat_interleave(F_, dim=0), frames], dim=1)  # (B*F, 1 + N, D)
        y = super().forward(frames, _PLAIN)
        patches = y[:, c:].reshape(B, F_, N, D).transpose(1, 2).reshape(B, N * F_, D)
        if not c:
            return patches
        cls = y[:, 0].reshape(B, F_, D).mean(dim=1, keepdim=True)  # (B, 1, D)
        return torch.cat([cls, patches], dim=1)
