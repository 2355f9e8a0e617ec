"""Temporal mixing of per-frame embeddings (CLIP4Clip's "seqTransf"): learned frame positions + bidirectional
`Block`s over the frame axis. Mode 'mean' is the order-blind baseline (frames pass through unchanged)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import BlockConfig, transformer_block

TEMPORAL_MODES = ("transformer", "mean")


def check_temporal(mode: str, width: int, heads: int, depth: int, max_frames: int, owner: str) -> None:
    if mode not in TEMPORAL_MODES:
        raise ValueError(f"{owner}: temporal must be one of {TEMPORAL_MODES}, got {mode!r}")
    if mode == "transformer":
        if depth < 1:
            raise ValueError(f"{owner}: temporal_depth must be >= 1 for a temporal transformer, got {depth}")
        if heads < 1 or width % heads:
            raise ValueError(f"{owner}: frame embedding width {width} is not divisible by temporal_heads {heads}")
    if max_frames < 1:
        raise ValueError(f"{owner}: max_frames must be >= 1, got {max_frames}")


class TemporalMixer(nn.Module):
    """(B, T, D) frame embeddings -> (B, T, D) mixed across time.

    The blocks run on `h0 = norm(x) + frame_pos` (a parameter-free LayerNorm puts the frames on the scale
    of the positions, which start at unit scale so that order is visible from the first step) and the
    mixer returns `x + (blocks(h0) - h0)`: the frames plus what the residual branches add (CLIP4Clip also
    adds the input back). The branches' output projections start at zero, so a new mixer returns its input
    exactly: training starts from the mean-pooling baseline (and from a pretrained CLIP's own embeddings)
    and learns what order adds."""

    def __init__(self, dim: int, mode: str = "transformer", depth: int = 2, heads: int = 4,
                 mlp_hidden: int | None = None, max_frames: int = 32, dropout: float = 0.0,
                 activation: str = "gelu", norm_eps: float = 1e-5):
        super().__init__()
        check_temporal(mode, dim, heads, depth, max_frames, "TemporalMixer")
        self.mode, self.max_frames = mode, max_frames
        if mode == "mean":
            self.frame_pos, self.blocks = None, nn.ModuleList()
            return
        self.frame_pos = nn.Parameter(torch.randn(max_frames, dim))
        cfg = BlockConfig(dim=dim, n_heads=heads, mlp_hidden=mlp_hidden or 4 * dim, activation=activation,
                          norm_eps=norm_eps, prenorm=True, dropout=dropout)
        self.blocks = nn.ModuleList(transformer_block(cfg) for _ in range(depth))
        for b in self.blocks:
            nn.init.normal_(b.attn.qkv.weight, std=dim ** -0.5)
            nn.init.normal_(b.mlp.fc.weight, std=(2 * dim) ** -0.5)
            for proj in (b.attn.proj, b.mlp.proj):
                nn.init.zeros_(proj.weight)
            for m in b.modules():
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: (B, T, D)
        if self.mode == "mean":
            return frames
        T, D = frames.shape[1:]
        if T > self.max_frames:
            raise ValueError(f"{T} frames, but the temporal model has positions for max_frames={self.max_frames}")
        h0 = F.layer_norm(frames, (D,)) + self.frame_pos[:T].to(frames.dtype)  # (B, T, D)
        h = h0
        for block in self.blocks:
            h = block(h)  # bidirectional attention over the frames
        return frames + (h - h0)  # (B, T, D)


def check_video(video: torch.Tensor, owner: str) -> None:
    if video.dim() != 5:
        raise ValueError(f"{owner} expects video (B, T, C, H, W), got shape {tuple(video.shape)}")
