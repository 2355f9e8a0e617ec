"""Video captioner: a video backbone's tokens (one per frame after the temporal transformer for `video_frames`,
the space-time tokens of a `video_transformer`) read through cross-attention by the captioner's GPT decoder.
The same decoder, projection, generation and beam search as the image `Captioner`; only `encode` differs.
Video QA uses the same model: the question is the decoder's prompt and the answer its continuation.

`forward(video (B, T, C, H, W), input_ids (B, L)) -> logits (B, L, V)`; `generate(video)` captions."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from .captioner import Captioner
from .gpt import GPT, GPTConfig
from .registry import family, make_config, preset_config, register_family, register_preset
from .video_classifier import SAMPLINGS, TINY_FRAME, is_video_backbone
from .video_frames import NANO_VIT
from .video_temporal import check_video


@dataclass
class VideoCaptionerConfig:
    backbone_family: str = "video_frames"
    backbone: dict = field(default_factory=dict)  # fields of the video backbone's config
    decoder: dict = field(default_factory=dict)   # GPTConfig fields (cross-attention is switched on)
    project: bool | None = None    # Linear from the backbone width to the decoder width; default: when they differ
    bos_id: int = 0
    eos_id: int = 0
    pad_id: int = 0
    num_frames: int = 8            # frames per clip in training (prediction samples the same way)
    sampling: str = "segments"     # segments (TSN) | stride
    sample_fps: float | None = None

    def __post_init__(self):
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")

    def projects(self, memory_dim: int) -> bool:
        return self.project if self.project is not None else memory_dim != self.decoder.get("n_embd", GPTConfig.n_embd)

    def decoder_config(self, memory_dim: int) -> GPTConfig:
        fields = {**self.decoder, "cross_attention": True}
        fields["cross_dim"] = fields.get("n_embd", GPTConfig.n_embd) if self.projects(memory_dim) else memory_dim
        return make_config("gpt", fields)


def video_tokens(backbone: nn.Module, video: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, N, D) tokens of a video backbone (final-normed for a space-time Transformer)."""
    if hasattr(backbone, "forward_tokens"):
        return backbone.forward_tokens(video)
    tokens = backbone.forward_features(video)
    return backbone.norm(tokens) if backbone.config.pool == "mean" else tokens  # pool 'cls' tokens are normed


class VideoCaptioner(Captioner):
    """A `Captioner` whose encoder is a video backbone; decoding, generation and beam search are inherited."""

    def __init__(self, config: VideoCaptionerConfig):
        nn.Module.__init__(self)
        self.config = c = config
        cls = family(c.backbone_family).model_cls
        if not is_video_backbone(cls):
            raise ValueError(f"backbone family {c.backbone_family!r} is not a video backbone (video_frames or "
                             "video_transformer)")
        self.encoder = cls(make_config(c.backbone_family, dict(c.backbone)))
        bc = self.encoder.config
        if getattr(bc, "labels", None):
            raise ValueError(f"the {c.backbone_family} backbone has a classification head; set its labels to None")
        if getattr(bc, "frames", c.num_frames) != c.num_frames:
            raise ValueError(f"num_frames {c.num_frames} does not match the backbone's frames {bc.frames}")
        mem = self.encoder.out_dim
        dcfg = c.decoder_config(mem)
        self.proj = nn.Linear(mem, dcfg.n_embd) if c.projects(mem) else None
        self.decoder = GPT(dcfg)

    def unused_parameters(self) -> list[str]:
        """A space-time Transformer's classification head (none here) is the only part never read."""
        return [n for n, _ in self.named_parameters() if n.startswith("encoder.head.")]

    @property
    def image_config(self):
        """Image size and normalisation of the frames."""
        return getattr(self.encoder, "image_config", None) or self.encoder.config

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, N, C_dec) video tokens for cross-attention."""
        check_video(video, "VideoCaptioner")
        x = video_tokens(self.encoder, video)  # (B, N, D)
        return self.proj(x) if self.proj is not None else x


def _fields(decoder_preset: str, **decoder) -> dict:
    _, dcfg = preset_config(decoder_preset)
    return {**dataclasses.asdict(dcfg), **decoder}


register_family("video_captioner", VideoCaptionerConfig, VideoCaptioner,
                "video backbone tokens + GPT decoder with cross-attention: video captioning and QA")
register_preset("video-captioner-nano", "video_captioner", "32px ViT per frame (width 32) + 1 temporal layer + "
                "2-layer width-32 decoder: tests", backbone=dict(frame=NANO_VIT, temporal_depth=1, max_frames=16),
                decoder=_fields("gpt-nano", block_size=64), num_frames=4)
register_preset("video-captioner-tiny", "video_captioner", "32px ResNet per frame + 2-layer temporal transformer "
                "+ 2-layer width-128 decoder: CPU training",
                backbone=dict(frame_family="cnn", frame={**TINY_FRAME, "norm": "batchnorm"}, temporal_depth=2,
                              temporal_heads=4, max_frames=32),
                decoder=_fields("gpt-micro", n_layer=2, n_head=4, n_embd=128, block_size=40), num_frames=8)
