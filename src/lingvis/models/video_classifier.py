"""Video classifier: a video backbone ((B, T, C, H, W) -> (B, D); by default `video_frames`) + a linear head.
The config also records how clips were sampled in training, so prediction samples the same way."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .registry import family, make_config, register_family, register_preset
from .video import TIMESFORMER, VideoTransformer
from .video_frames import NANO_VIT
from .video_temporal import check_video

SAMPLINGS = ("segments", "stride")


def is_video_backbone(model_cls: type) -> bool:
    """Whether a model class maps (B, T, C, H, W) to (B, out_dim): `video_frames` (and any class flagged
    `video_backbone = True`) or the space-time `video_transformer` (used without its head)."""
    return bool(getattr(model_cls, "video_backbone", False)) or issubclass(model_cls, VideoTransformer)


@dataclass
class VideoClassifierConfig:
    backbone_family: str = "video_frames"
    backbone: dict = field(default_factory=dict)   # fields of the backbone's config
    labels: list[str] = field(default_factory=lambda: ["0", "1"])
    dropout: float = 0.0
    num_frames: int = 8                 # frames per clip the model was trained on
    sampling: str = "segments"          # segments (TSN) | stride
    sample_fps: float | None = None     # stride sampling rate (None: consecutive frames)

    def __post_init__(self):
        self.labels = [str(x) for x in self.labels]
        if len(self.labels) < 2:
            raise ValueError(f"a video classifier needs at least 2 labels, got {self.labels}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"duplicate label names in {self.labels}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")

    @property
    def num_labels(self) -> int:
        return len(self.labels)


class VideoClassifier(nn.Module):
    """`forward(video (B, T, C, H, W)) -> logits (B, L)`; `probabilities` also takes (B, K, T, C, H, W) clips and
    averages their softmax scores."""

    def __init__(self, config: VideoClassifierConfig):
        super().__init__()
        self.config = c = config
        cls = family(c.backbone_family).model_cls
        if not is_video_backbone(cls):
            raise ValueError(f"backbone family {c.backbone_family!r} is not a video backbone (video_frames, "
                             "video_transformer, or a model class with `video_backbone = True` that maps "
                             "(B, T, C, H, W) to (B, out_dim) and has `out_dim` and `image_config`)")
        self.backbone = cls(make_config(c.backbone_family, dict(c.backbone)))
        bc = self.backbone.config
        if getattr(bc, "labels", None):
            raise ValueError(f"the {c.backbone_family} backbone has its own classification head (labels="
                             f"{bc.labels}); set backbone labels to None")
        if getattr(bc, "frames", c.num_frames) != c.num_frames:
            raise ValueError(f"num_frames {c.num_frames} does not match the {c.backbone_family} backbone's "
                             f"frames {bc.frames} (it takes clips of exactly that many frames)")
        self.drop = nn.Dropout(c.dropout)
        self.head = nn.Linear(self.backbone.out_dim, c.num_labels)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def image_config(self):
        """Image size and normalisation of the frames (a video Transformer's own config holds them)."""
        return getattr(self.backbone, "image_config", None) or self.backbone.config

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        check_video(video, "VideoClassifier")
        return self.head(self.drop(self.backbone(video)))  # (B, L)

    @torch.no_grad()
    def probabilities(self, video: torch.Tensor) -> torch.Tensor:
        """(B, L) class probabilities; several clips per video (B, K, T, C, H, W) are averaged."""
        if video.dim() == 6:
            B, K = video.shape[:2]
            return self.forward(video.flatten(0, 1)).softmax(-1).view(B, K, -1).mean(dim=1)
        return self.forward(video).softmax(-1)

    @torch.no_grad()
    def predict(self, video: torch.Tensor, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k (label, probability) per video."""
        probs = self.probabilities(video)
        p, idx = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        return [[(self.config.labels[j], float(q)) for q, j in zip(pr, ix)] for pr, ix in zip(p.tolist(), idx.tolist())]


register_family("video_classifier", VideoClassifierConfig, VideoClassifier,
                "video backbone (frames + temporal head, or any video family) + linear head")
register_preset("video-classifier-nano", "video_classifier", "video-frames-nano backbone + linear head: tests",
                backbone=dict(frame=NANO_VIT, temporal_depth=1, max_frames=16), num_frames=4)
# a small ResNet with attention pooling (its learned positions keep where things are in the frame)
TINY_FRAME = dict(image_size=32, stem_width=32, stem_stride=2, widths=[32, 64, 128], depths=[1, 1, 1], attn_heads=4,
                  embed_dim=128, norm="groupnorm")
register_preset("video-classifier-tiny", "video_classifier",
                "32px ResNet per frame (3 stages, attention pooling) + 2-layer temporal transformer: CPU training",
                backbone=dict(frame_family="cnn", frame=TINY_FRAME, temporal_depth=2, temporal_heads=4, max_frames=32),
                num_frames=8)
register_preset("video-classifier-tiny-mean", "video_classifier",
                "video-classifier-tiny with mean pooling over frames (the order-blind baseline)",
                backbone=dict(frame_family="cnn", frame=TINY_FRAME, temporal="mean", max_frames=32), num_frames=8)
register_preset("video-classifier-tiny-st", "video_classifier",
                "video-tiny space-time Transformer backbone (8 frames of 32px, divided attention) + linear head",
                backbone_family="video_transformer",
                backbone=dict(image_size=32, patch_size=8, frames=8, dim=128, depth=4, heads=4, mlp_hidden=512,
                              **TIMESFORMER), num_frames=8)
