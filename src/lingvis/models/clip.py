"""CLIP: an image tower (ViT or CNN) and a text tower (CLIP's causal Transformer or any lingvis text
encoder, e.g. a locked BERT/MiniLM for "LiT"), linear projections into one space, a learnable clamped
temperature, and the symmetric InfoNCE loss (features gathered across ranks in distributed runs)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..train.gather import all_gather_with_grad, world
from .clip_text import text_inputs  # also registers the clip_text family
from .registry import family, make_config, register_family, register_preset

TEXT_POOLS = ("eos", "argmax", "cls", "mean")


@dataclass
class CLIPConfig:
    vision_family: str = "vit"
    vision: dict = field(default_factory=dict)      # fields of the image tower's config
    text_family: str = "clip_text"
    text: dict = field(default_factory=dict)        # fields of the text tower's config
    projection_dim: int = 512
    text_pool: str = "eos"          # eos: first end-of-text token (CLIP) | argmax: highest id (old CLIP) | cls | mean
    eos_token_id: int | None = 49407
    bos_token_id: int | None = 49406
    pad_token_id: int | None = None
    logit_scale_init: float = math.log(1 / 0.07)
    max_logit_scale: float = 100.0  # the temperature's inverse is clamped to [1, max_logit_scale]
    lock_image: bool = False        # frozen towers (LiT locks a pretrained text or image tower)
    lock_text: bool = False

    def __post_init__(self):
        if self.text_pool not in TEXT_POOLS:
            raise ValueError(f"text_pool must be one of {TEXT_POOLS}, got {self.text_pool!r}")
        if self.max_logit_scale < 1:
            raise ValueError(f"max_logit_scale must be >= 1, got {self.max_logit_scale}")

    @property
    def text_style(self) -> str:
        return "clip" if self.text_family == "clip_text" else "encoder"


def build_tower(family_name: str, fields: dict) -> nn.Module:
    return family(family_name).model_cls(make_config(family_name, dict(fields)))


def _tower_width(tower: nn.Module) -> int:
    cfg = tower.config
    for name in ("out_dim", "dim", "n_embd", "hidden_size"):
        if getattr(cfg, name, None) is not None:
            return int(getattr(cfg, name))
    raise ValueError(f"cannot tell the output width of a {type(tower).__name__} text/image tower")


class CLIP(nn.Module):
    """`encode_image(pixels (B, 3, H, W)) -> (B, P)`, `encode_text(input_ids (B, T), attention_mask) -> (B, P)`
    (L2-normalised by default); `forward(pixels, input_ids, attention_mask) -> logits_per_image (B, B')`."""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = c = config
        self.vision = build_tower(c.vision_family, c.vision)
        self.text = build_tower(c.text_family, c.text)
        if not hasattr(self.text, "encode"):
            raise ValueError(f"text tower family {c.text_family!r} has no `encode(input_ids, attention_mask)`")
        self.visual_projection = nn.Linear(_tower_width(self.vision), c.projection_dim, bias=False)
        self.text_projection = nn.Linear(_tower_width(self.text), c.projection_dim, bias=False)
        nn.init.normal_(self.visual_projection.weight, std=_tower_width(self.vision) ** -0.5)
        nn.init.normal_(self.text_projection.weight, std=_tower_width(self.text) ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(float(c.logit_scale_init)))
        for locked, tower in ((c.lock_image, self.vision), (c.lock_text, self.text)):
            if locked:
                tower.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for locked, tower in ((self.config.lock_image, self.vision), (self.config.lock_text, self.text)):
            if locked:
                tower.eval()  # a locked tower keeps dropout and batch-norm statistics off
        return self

    @property
    def image_config(self):
        return self.vision.config

    @property
    def context_length(self) -> int:
        cfg = self.text.config
        return int(getattr(cfg, "context_length", None) or getattr(cfg, "max_positions"))

    def scale(self) -> torch.Tensor:
        """exp(logit_scale) clamped to [1, max_logit_scale] (no gradient past the clamp)."""
        return self.logit_scale.clamp(0.0, math.log(self.config.max_logit_scale)).exp()

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vision(pixels)  # (B, C_img), before the projection

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled text tower output (B, C_txt) before the projection."""
        hidden = self.text.encode(input_ids, attention_mask)  # (B, T, C)
        pool, B = self.config.text_pool, input_ids.shape[0]
        rows = torch.arange(B, device=hidden.device)
        if pool == "eos" and self.config.eos_token_id is None:  # no eos id yet: the last real token
            T = hidden.shape[1]
            last = attention_mask.sum(-1) - 1 if attention_mask is not None else torch.full_like(rows, T - 1)
            return hidden[rows, last.clamp(min=0)]
        if pool == "eos":  # first eos (as transformers: position 0 when a row has none)
            return hidden[rows, (input_ids == self.config.eos_token_id).int().argmax(dim=-1)]
        if pool == "argmax":
            return hidden[rows, input_ids.int().argmax(dim=-1)]
        if pool == "cls":
            return hidden[:, 0]
        m = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        m = m.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)

    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        z = self.visual_projection(self.image_features(pixels))  # (B, P)
        return F.normalize(z, dim=-1) if normalize else z

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    normalize: bool = True) -> torch.Tensor:
        z = self.text_projection(self.text_features(input_ids, attention_mask))  # (B, P)
        return F.normalize(z, dim=-1) if normalize else z

    def tokenize(self, tokenizer, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask) for `texts` in the layout this text tower was trained with."""
        c = self.config
        pad = tokenizer.pad_id if tokenizer.pad_id is not None else c.pad_token_id
        return text_inputs(tokenizer, texts, self.context_length, c.text_style, c.bos_token_id, c.eos_token_id, pad)

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        img, txt = self.encode_image(pixels), self.encode_text(input_ids, attention_mask)
        return self.scale() * img @ txt.t()  # (B_img, B_txt) logits_per_image


def contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over normalised (B, P) embeddings; in a distributed run the negatives are every
    rank's features (gathered with gradient) and each rank scores its own rows."""
    rank, _ = world()
    all_img, all_txt = all_gather_with_grad(image_emb), all_gather_with_grad(text_emb)  # (W*B, P)
    B = image_emb.shape[0]
    labels = torch.arange(rank * B, (rank + 1) * B, device=image_emb.device)
    logits_i = scale * image_emb @ all_txt.t()  # (B, W*B)
    logits_t = scale * text_emb @ all_img.t()  # (B, W*B)
    return 0.5 * (F.cross_entropy(logits_i.float(), labels) + F.cross_entropy(logits_t.float(), labels))


def _clip_vit(patch: int) -> dict:
    return dict(image_size=224, patch_size=patch, dim=768, depth=12, heads=12, mlp_hidden=3072,
                activation="quick_gelu", pre_norm=True, patch_bias=False, final_norm="pooled")


TINY_TEXT = dict(vocab_size=1024, context_length=32, dim=128, depth=3, heads=4, mlp_hidden=512)
register_family("clip", CLIPConfig, CLIP, "dual encoder (CLIP): contrastive image-text model")
register_preset("clip-vit-b-32", "clip", "OpenAI CLIP ViT-B/32 layout, 151,277,313 parameters",
                vision=_clip_vit(32))
register_preset("clip-vit-b-16", "clip", "OpenAI CLIP ViT-B/16 layout, 149,620,737 parameters",
                vision=_clip_vit(16))
register_preset("clip-tiny", "clip", "64px ViT (patch 8, 4 layers, width 192) + 3-layer text tower: CPU training",
                vision=dict(image_size=64, patch_size=8, dim=192, depth=4, heads=3, mlp_hidden=768,
                            pre_norm=True, patch_bias=False, final_norm="pooled", activation="quick_gelu"),
                text=TINY_TEXT, projection_dim=128, eos_token_id=None, bos_token_id=None)
register_preset("clip-shapes", "clip", "48px ViT (patch 6, 4 layers, width 128) + 2-layer text tower: shapes in minutes",
                vision=dict(image_size=48, patch_size=6, dim=128, depth=4, heads=4, mlp_hidden=512, pre_norm=True,
                            patch_bias=False, final_norm="pooled", activation="quick_gelu"),
                text=dict(vocab_size=256, context_length=32, dim=128, depth=2, heads=4, mlp_hidden=512),
                projection_dim=128, eos_token_id=None, bos_token_id=None)
register_preset("clip-cnn-shapes", "clip", "48px ResNet (3 stages, attention pooling) + 2-layer text tower: shapes "
                "in minutes", vision_family="cnn",
                vision=dict(image_size=48, stem_width=32, stem_stride=2, widths=[32, 64, 128], depths=[1, 1, 1],
                            attn_heads=4, embed_dim=128),
                text=dict(vocab_size=256, context_length=32, dim=128, depth=2, heads=4, mlp_hidden=512),
                projection_dim=128, eos_token_id=None, bos_token_id=None)
register_preset("clip-cnn-tiny", "clip", "64px ResNet (attention pooling) + 3-layer text tower: CPU training",
                vision_family="cnn", vision=dict(image_size=64, stem_width=32, stem_stride=2, widths=[32, 64, 128, 256],
                                                 depths=[1, 1, 1, 1], attn_heads=4, embed_dim=256),
                text=TINY_TEXT, projection_dim=128, eos_token_id=None, bos_token_id=None)
register_preset("clip-nano", "clip", "32px ViT + 1-layer text tower, width 32: tests",
                vision=dict(image_size=32, patch_size=8, dim=32, depth=1, heads=4, mlp_hidden=64, pre_norm=True,
                            patch_bias=False, final_norm="pooled", activation="quick_gelu"),
                text=dict(vocab_size=64, context_length=16, dim=32, depth=1, heads=4, mlp_hidden=64),
                projection_dim=16, eos_token_id=None, bos_token_id=None)
