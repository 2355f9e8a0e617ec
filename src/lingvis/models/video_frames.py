"""A video encoder made of an image encoder applied to every frame and a temporal head over the frame
embeddings (transformer with learned frame positions, or mean pooling as the order-blind baseline).

`forward(video (B, T, C, H, W)) -> (B, D)`. Any video backbone (e.g. tubelet / space-time Transformers)
that maps (B, T, C, H, W) to (B, D) and exposes `out_dim` and `image_config` plugs into
`video_classifier` the same way, through the registry."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .clip import _tower_width, build_tower
from .registry import register_family, register_preset
from .video_temporal import TemporalMixer, check_video

NANO_VIT = dict(image_size=32, patch_size=8, dim=32, depth=1, heads=4, mlp_hidden=64)


@dataclass
class VideoFramesConfig:
    frame_family: str = "vit"       # any image tower family: vit | cnn
    frame: dict = field(default_factory=dict)  # fields of the frame encoder's config
    temporal: str = "transformer"   # transformer | mean
    temporal_depth: int = 2
    temporal_heads: int = 4
    temporal_mlp_hidden: int | None = None  # default 4 x the frame embedding width
    max_frames: int = 32
    dropout: float = 0.0


class VideoFrames(nn.Module):
    """Per-frame image encoder + temporal mixer, mean-pooled over time."""

    video_backbone = True  # maps (B, T, C, H, W) -> (B, out_dim): usable by video_classifier

    def __init__(self, config: VideoFramesConfig):
        super().__init__()
        self.config = c = config
        self.frame_encoder = build_tower(c.frame_family, c.frame)
        width = _tower_width(self.frame_encoder)
        self.temporal = TemporalMixer(width, c.temporal, c.temporal_depth, c.temporal_heads, c.temporal_mlp_hidden,
                                      c.max_frames, c.dropout)

    @property
    def out_dim(self) -> int:
        return _tower_width(self.frame_encoder)

    @property
    def image_config(self):
        return self.frame_encoder.config

    def forward_frames(self, video: torch.Tensor) -> torch.Tensor:
        """Per-frame embeddings (B, T, D) before temporal mixing."""
        check_video(video, "VideoFrames")
        B, T = video.shape[:2]
        return self.frame_encoder(video.flatten(0, 1)).view(B, T, -1)  # (B, T, D)

    def forward_tokens(self, video: torch.Tensor) -> torch.Tensor:
        """One token per frame after temporal mixing (B, T, D): the memory a caption decoder reads."""
        return self.temporal(self.forward_frames(video))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(video).mean(dim=1)  # (B, D)


register_family("video_frames", VideoFramesConfig, VideoFrames,
                "video encoder: image tower per frame + temporal transformer (or mean pooling)")
register_preset("video-frames-nano", "video_frames", "32px ViT per frame (width 32) + 1 temporal layer: tests",
                frame=NANO_VIT, temporal_depth=1, max_frames=16)
