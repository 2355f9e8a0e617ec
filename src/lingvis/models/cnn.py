"""ResNet-style CNN image encoder with mean or attention pooling (as CLIP's ModifiedResNet).

Same API as `ViT`: `forward_features(pixels) -> (B, N, C)` (the final feature map as N = h*w tokens) and
`forward(pixels) -> (B, D)` pooled embedding.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import Attention, BlockInputs
from .registry import register_family, register_preset
from .vit import CLIP_MEAN, CLIP_STD


@dataclass
class CNNConfig:
    image_size: int = 224
    channels: int = 3
    stem_width: int = 64
    stem_stride: int = 4             # 1, 2 or 4: downsampling done by the stem
    widths: list[int] = field(default_factory=lambda: [64, 128, 256, 512])
    depths: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    block: str = "basic"             # basic (two 3x3) | bottleneck (1x1, 3x3, 1x1 with 4x expansion)
    norm: str = "batchnorm"          # batchnorm | groupnorm
    pool: str = "attention"          # attention | mean
    attn_heads: int = 8
    embed_dim: int | None = None     # pooled embedding width; default the last stage's width
    image_mean: list[float] = field(default_factory=lambda: list(CLIP_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(CLIP_STD))
    resize_size: int | None = None

    def __post_init__(self):
        if len(self.widths) != len(self.depths) or not self.widths:
            raise ValueError(f"widths {self.widths} and depths {self.depths} must be non-empty and equally long")
        if self.stem_stride not in (1, 2, 4):
            raise ValueError(f"stem_stride must be 1, 2 or 4, got {self.stem_stride}")
        choices = {"block": ("basic", "bottleneck"), "norm": ("batchnorm", "groupnorm"), "pool": ("attention", "mean")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.feature_size < 1:
            raise ValueError(f"image_size {self.image_size} is too small for {len(self.widths)} stages")

    @property
    def reduction(self) -> int:
        return self.stem_stride * 2 ** (len(self.widths) - 1)

    @property
    def feature_size(self) -> int:
        return self.image_size // self.reduction

    @property
    def feature_dim(self) -> int:
        return self.widths[-1] * (4 if self.block == "bottleneck" else 1)

    @property
    def out_dim(self) -> int:
        return self.embed_dim or self.feature_dim


def _norm(kind: str, ch: int) -> nn.Module:
    return nn.BatchNorm2d(ch) if kind == "batchnorm" else nn.GroupNorm(min(32, ch), ch)


def _conv_bn(cin: int, cout: int, k: int, stride: int, norm: str, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), _norm(norm, cout)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if act else nn.Sequential(*layers)


class ResBlock(nn.Module):
    """Residual block; a stride-2 block downsamples its shortcut with avg-pool + 1x1 conv (ResNet-D)."""

    def __init__(self, cin: int, width: int, stride: int, kind: str, norm: str):
        super().__init__()
        cout = width * (4 if kind == "bottleneck" else 1)
        if kind == "basic":
            self.body = nn.Sequential(_conv_bn(cin, width, 3, stride, norm), _conv_bn(width, cout, 3, 1, norm, act=False))
        else:
            self.body = nn.Sequential(_conv_bn(cin, width, 1, 1, norm), _conv_bn(width, width, 3, stride, norm),
                                      _conv_bn(width, cout, 1, 1, norm, act=False))
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
            self.shortcut = nn.Sequential(pool, _conv_bn(cin, cout, 1, 1, norm, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W) -> (B, Cout, H/s, W/s)
        return F.relu(self.body(x) + self.shortcut(x))


class AttentionPool(Attention):
    """Multi-head attention of the mean token (query) over mean + all feature-map tokens, with learned
    positions, projected to `out_dim` (CLIP's AttentionPool2d): the shared cross-attention whose memory is
    the token set itself."""

    def __init__(self, n_tokens: int, dim: int, heads: int, out_dim: int):
        if dim % heads:
            raise ValueError(f"feature width {dim} is not divisible by attn_heads {heads}")
        pos = torch.randn(n_tokens + 1, dim) / dim ** 0.5
        super().__init__(dim, heads, cross=True, kv_dim=dim, out_dim=out_dim)
        self.pos = nn.Parameter(pos)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # tokens: (B, N, C) -> (B, out_dim)
        N = tokens.shape[1]
        if N + 1 != self.pos.shape[0]:
            raise ValueError(f"attention pooling was built for {self.pos.shape[0] - 1} feature-map tokens, got {N}")
        x = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1) + self.pos  # (B, 1 + N, C)
        return super().forward(x[:, :1], BlockInputs(memory=x))[:, 0]  # (B, out_dim)


class CNN(nn.Module):
    """Stem -> residual stages -> feature-map tokens -> mean or attention pooling."""

    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = c = config
        half = max(c.stem_width // 2, 8)
        stem = [_conv_bn(c.channels, half, 3, 2 if c.stem_stride > 1 else 1, c.norm),
                _conv_bn(half, half, 3, 1, c.norm), _conv_bn(half, c.stem_width, 3, 1, c.norm)]
        self.stem = nn.Sequential(*stem, nn.AvgPool2d(2) if c.stem_stride == 4 else nn.Identity())
        stages, cin = [], c.stem_width
        for i, (width, depth) in enumerate(zip(c.widths, c.depths)):
            blocks = []
            for j in range(depth):
                blocks.append(ResBlock(cin, width, 2 if (i > 0 and j == 0) else 1, c.block, c.norm))
                cin = width * (4 if c.block == "bottleneck" else 1)
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        if c.pool == "attention":
            self.head = AttentionPool(c.feature_size ** 2, c.feature_dim, c.attn_heads, c.out_dim)
        else:
            self.head = nn.Linear(c.feature_dim, c.out_dim) if c.embed_dim else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def out_dim(self) -> int:
        return self.config.out_dim

    def forward_features(self, pixels: torch.Tensor) -> torch.Tensor:
        # pixels: (B, 3, H, W) -> tokens (B, h*w, C)
        c = self.config
        if pixels.dim() != 4 or pixels.shape[1] != c.channels:
            raise ValueError(f"expected pixels (B, {c.channels}, H, W), got shape {tuple(pixels.shape)}")
        x = self.stem(pixels)
        for stage in self.stages:
            x = stage(x)  # (B, C, h, w)
        return x.flatten(2).transpose(1, 2)  # (B, h*w, C)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.config.pool == "attention":
            return self.head(tokens)  # (B, D)
        return self.head(tokens.mean(dim=1))  # (B, D)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_features(pixels))  # (B, D)


register_family("cnn", CNNConfig, CNN, "ResNet-style CNN image encoder with attention or mean pooling")
register_preset("resnet-18", "cnn", "ResNet-18 layout (basic blocks 2-2-2-2), attention pooling, 224px")
register_preset("resnet-50", "cnn", "ResNet-50 layout (bottlenecks 3-4-6-3), attention pooling to 1024 (CLIP RN50)",
                block="bottleneck", depths=[3, 4, 6, 3], attn_heads=32, embed_dim=1024)
register_preset("cnn-tiny", "cnn", "64px, stem stride 2, widths 32-64-128-256: trains on a CPU in minutes",
                image_size=64, stem_width=32, stem_stride=2, widths=[32, 64, 128, 256], depths=[1, 1, 1, 1],
                attn_heads=4)
register_preset("cnn-nano", "cnn", "32px, two stages of width 16/32: tests", image_size=32, stem_width=16,
                stem_stride=2, widths=[16, 32], depths=[1, 1], attn_heads=4)
