"""CLIP4Clip-style video-text model on top of a lingvis CLIP: the image tower embeds every frame, a temporal
transformer with learned frame positions mixes the (projected) frame embeddings (or 'mean': mean pooling,
the baseline), and frames are pooled as in CLIP4Clip (normalise each, average, normalise). The text side,
temperature and symmetric InfoNCE loss are CLIP's. `from_clip` starts from any lingvis or HF CLIP.

`frame_input="rgb+diff"` gives the image tower each frame with its difference from the previous sampled frame
(6 channels): the direction of motion becomes a local, oriented pattern (a leading and a trailing edge) that the
first convolutions see, instead of something the temporal model must infer from absolute positions."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .clip import CLIP
from .registry import PRESETS, make_config, register_family, register_preset
from .video_classifier import SAMPLINGS, TINY_FRAME
from .video_temporal import TemporalMixer, check_temporal, check_video

FRAME_INPUTS = ("rgb", "rgb+diff")


@dataclass
class VideoCLIPConfig:
    clip: dict = field(default_factory=dict)   # fields of the CLIP config (towers, projection, temperature)
    temporal: str = "transformer"   # transformer | mean
    temporal_depth: int = 4
    temporal_heads: int = 8
    temporal_mlp_hidden: int | None = None  # default 4 x projection_dim
    max_frames: int = 32
    dropout: float = 0.0
    num_frames: int = 8                 # frames per clip in training (prediction samples the same way)
    sampling: str = "segments"          # segments (TSN) | stride
    sample_fps: float | None = None
    frame_input: str = "rgb"            # rgb | rgb+diff (frame + difference from the previous frame: 6 channels)

    def __post_init__(self):
        if self.frame_input not in FRAME_INPUTS:
            raise ValueError(f"frame_input must be one of {FRAME_INPUTS}, got {self.frame_input!r}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")


class VideoCLIP(nn.Module):
    """`encode_video(video (B, T, C, H, W)) -> (B, P)`, `encode_text(input_ids, attention_mask) -> (B, P)`
    (L2-normalised); `forward(video, input_ids, attention_mask) -> logits_per_video (B, B')`."""

    def __init__(self, config: VideoCLIPConfig):
        super().__init__()
        self.config = c = config
        self.clip = CLIP(make_config("clip", dict(c.clip)))
        width = self.clip.config.projection_dim
        check_temporal(c.temporal, width, c.temporal_heads, c.temporal_depth, c.max_frames,
                       f"video_clip (projection_dim {width})")
        channels, need = self.clip.vision.config.channels, 6 if c.frame_input == "rgb+diff" else 3
        if channels != need:
            raise ValueError(f"video_clip frame_input {c.frame_input!r} needs an image tower with {need} input "
                             f"channels, the CLIP's has {channels}")
        self.temporal = TemporalMixer(width, c.temporal, c.temporal_depth, c.temporal_heads, c.temporal_mlp_hidden,
                                      c.max_frames, c.dropout)

    @classmethod
    def from_clip(cls, clip: CLIP, **fields) -> VideoCLIP:
        """A video model whose CLIP weights are `clip`'s (a lingvis run or an HF folder loaded by
        `lingvis.load`); `fields` set the temporal head and sampling (VideoCLIPConfig fields). A CLIP
        takes RGB images, so frame_input "rgb+diff" needs one built for 6 channels."""
        if getattr(clip, "family", None) != "clip":
            raise ValueError(f"from_clip needs a CLIP model, got {getattr(clip, 'family', type(clip).__name__)}")
        model = cls(make_config("video_clip", {**fields, "clip": dataclasses.asdict(clip.config)}))
        model.clip.load_state_dict(clip.state_dict())
        return model

    # ---- what the CLIP helpers (tokenize, transforms, search) read ---------------------------------
    @property
    def image_config(self):
        return self.clip.image_config

    @property
    def context_length(self) -> int:
        return self.clip.context_length

    def tokenize(self, tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.clip.tokenize(tokenizer, texts)

    def scale(self) -> torch.Tensor:
        return self.clip.scale()

    # ---- encoders ------------------------------------------------------------------------------------
    def frame_pixels(self, video: torch.Tensor) -> torch.Tensor:
        """What the image tower gets per frame: (B, T, C, H, W), or with frame_input "rgb+diff" the frames
        and their differences from the previous frame (zero for the first) (B, T, 2C, H, W)."""
        if self.config.frame_input == "rgb":
            return video
        diff = video - torch.cat([video[:, :1], video[:, :-1]], dim=1)  # (B, T, C, H, W)
        return torch.cat([video, diff], dim=2)  # (B, T, 2C, H, W)

    def encode_frames(self, video: torch.Tensor) -> torch.Tensor:
        """Projected per-frame embeddings (B, T, P), not normalised."""
        check_video(video, "VideoCLIP")
        B, T = video.shape[:2]
        video = self.frame_pixels(video)
        return self.clip.encode_image(video.flatten(0, 1), normalize=False).view(B, T, -1)  # (B, T, P)

    def encode_video(self, video: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        frames = F.normalize(self.temporal(self.encode_frames(video)), dim=-1)  # (B, T, P)
        z = frames.mean(dim=1)  # (B, P)
        return F.normalize(z, dim=-1) if normalize else z

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    normalize: bool = True) -> torch.Tensor:
        return self.clip.encode_text(input_ids, attention_mask, normalize)

    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Single images (B, C, H, W) through the CLIP (the model also does image-text retrieval); a still
        image has no motion (a zero difference with frame_input "rgb+diff")."""
        if self.config.frame_input == "rgb+diff":
            pixels = torch.cat([pixels, torch.zeros_like(pixels)], dim=1)  # (B, 2C, H, W)
        return self.clip.encode_image(pixels, normalize)

    def forward(self, video: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        v, t = self.encode_video(video), self.encode_text(input_ids, attention_mask)
        return self.scale() * v @ t.t()  # (B_video, B_text) logits_per_video


def _clip_fields(preset: str, **overrides) -> dict:
    return {**PRESETS[preset][1], **overrides}


register_family("video_clip", VideoCLIPConfig, VideoCLIP,
                "CLIP4Clip-style video-text model: CLIP per frame + temporal transformer (or mean pooling)")
register_preset("video-clip-b-32", "video_clip", "CLIP ViT-B/32 per frame + 4-layer temporal transformer "
                "(CLIP4Clip seqTransf)", clip=_clip_fields("clip-vit-b-32"), temporal_heads=8, num_frames=12)
register_preset("video-clip-nano", "video_clip", "clip-nano per frame + 1 temporal layer: tests",
                clip=_clip_fields("clip-nano"), temporal_depth=1, temporal_heads=4, max_frames=16, num_frames=4)
register_preset("video-clip-tiny", "video_clip", "32px ResNet (batchnorm, attention pooling) per frame and its "
                "difference from the previous frame + 2-layer text tower, 2-layer temporal transformer: CPU training",
                clip=_clip_fields("clip-nano", vision_family="cnn",
                                  vision={**TINY_FRAME, "norm": "batchnorm", "channels": 6},
                                  text=dict(vocab_size=256, context_length=24, dim=64, depth=2, heads=4,
                                            mlp_hidden=256), projection_dim=64),
                temporal_depth=2, temporal_heads=4, num_frames=8, frame_input="rgb+diff")
