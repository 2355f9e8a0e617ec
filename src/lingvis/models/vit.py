"""Vision Transformer: patch embedding + class token + learned positions + the shared Block.

One class covers HF `ViTModel` (norm on every output token, optional tanh pooler) and CLIP's vision
tower (`ln_pre` before the blocks, quick-GELU, norm on the pooled class token only).
`forward_features(pixels) -> (B, N, C)` tokens; `forward(pixels) -> (B, D)` pooled embedding.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import BlockConfig, BlockInputs, make_norm, run_blocks, transformer_block
from ..nn.packed_linear import packed_linears
from ..nn.vision import PatchEmbed
from .registry import register_family, register_preset

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


@dataclass
class ViTConfig:
    image_size: int = 224
    patch_size: int = 16
    channels: int = 3
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_hidden: int = 3072
    activation: str = "gelu"
    norm_eps: float = 1e-5
    pre_norm: bool = False           # CLIP: LayerNorm on the embeddings before the blocks (`pre_layrnorm`)
    patch_bias: bool = True          # CLIP's patch convolution has no bias
    pool: str = "cls"                # cls | mean
    final_norm: str = "tokens"       # tokens: norm every output token (ViT) | pooled: only the pooled one (CLIP)
    pooler: bool = False             # HF ViTModel's dense + tanh pooler on top of the pooled token
    dropout: float = 0.0
    # preprocessing that belongs to these weights (read by lingvis.zeroshot / recipes)
    image_mean: list[float] = field(default_factory=lambda: list(CLIP_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(CLIP_STD))
    resize_size: int | None = None   # shortest-edge resize before the center crop; default image_size

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}")
        if self.pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {self.pool!r}")
        if self.final_norm not in ("tokens", "pooled"):
            raise ValueError(f"final_norm must be 'tokens' or 'pooled', got {self.final_norm!r}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def out_dim(self) -> int:
        return self.dim

    def block_config(self) -> BlockConfig:
        return BlockConfig(dim=self.dim, n_heads=self.heads, mlp_hidden=self.mlp_hidden,
                           activation=self.activation, norm_eps=self.norm_eps, prenorm=True,
                           dropout=self.dropout)


class ViT(nn.Module):
    """Image -> patch tokens -> Transformer blocks -> pooled embedding."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = c = config
        self.patch_embed = PatchEmbed(c.channels, c.dim, c.patch_size, bias=c.patch_bias)
        self.cls_token = nn.Parameter(torch.randn(c.dim) * c.dim ** -0.5)
        self.pos_embed = nn.Parameter(torch.randn(c.grid ** 2 + 1, c.dim) * c.dim ** -0.5)
        self.ln_pre = make_norm("layernorm", c.dim, c.norm_eps) if c.pre_norm else None
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(transformer_block(c.block_config()) for _ in range(c.depth))
        self.ln_post = make_norm("layernorm", c.dim, c.norm_eps)
        self.pooler = nn.Linear(c.dim, c.dim) if c.pooler else None
        init_blocks(self.blocks, c.dim)

    @property
    def out_dim(self) -> int:
        return self.config.dim

    def _positions(self, gh: int, gw: int) -> torch.Tensor:
        """(1 + gh*gw, C) position table, bicubic-interpolated when the patch grid differs from training."""
        g = self.config.grid
        if (gh, gw) == (g, g):
            return self.pos_embed
        grid = self.pos_embed[1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)  # (1, C, g, g)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([self.pos_embed[:1], grid.permute(0, 2, 3, 1).reshape(gh * gw, -1)])

    def embed(self, pixels: torch.Tensor, interpolate: bool = False) -> torch.Tensor:
        # pixels: (B, C, H, W) -> tokens (B, 1 + N, C)
        c = self.config
        if pixels.dim() != 4 or pixels.shape[1] != c.channels:
            raise ValueError(f"expected pixels (B, {c.channels}, H, W), got shape {tuple(pixels.shape)}")
        B, _, H, W = pixels.shape
        if (H, W) != (c.image_size, c.image_size) and not interpolate:
            raise ValueError(f"image size {H}x{W} does not match the model's {c.image_size}x{c.image_size} "
                             "(resize the input, or pass interpolate=True)")
        if H % c.patch_size or W % c.patch_size:
            raise ValueError(f"image size {H}x{W} is not divisible by patch_size {c.patch_size}")
        x = self.patch_embed.tokens(pixels)  # (B, N, C)
        x = torch.cat([self.cls_token.expand(B, 1, -1), x], dim=1)  # (B, 1 + N, C)
        x = x + self._positions(H // c.patch_size, W // c.patch_size)
        return self.ln_pre(x) if self.ln_pre is not None else x

    def forward_features(self, pixels: torch.Tensor, interpolate: bool = False,
                         output_hidden_states: bool = False):
        """Output tokens (B, 1 + N, C) (class token first); with `output_hidden_states` also the list of
        the input to every block plus the final tokens, as HF's `hidden_states`."""
        hidden = [] if output_hidden_states else None
        fast = not torch.is_grad_enabled() and not torch.compiler.is_compiling()  # inference, eager
        with packed_linears(self) if fast else contextlib.nullcontext():  # per-shape MKL / oneDNN choice
            x = run_blocks(self.blocks, self.drop(self.embed(pixels, interpolate)), BlockInputs(), hidden)
        if self.config.final_norm == "tokens":
            x = self.ln_post(x)
        return (x, hidden) if output_hidden_states else x

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, 1 + N, C) -> (B, C): class token or mean of the patch tokens, normed, optional tanh pooler."""
        x = tokens[:, 0] if self.config.pool == "cls" else tokens[:, 1:].mean(dim=1)
        if self.config.final_norm == "pooled":
            x = self.ln_post(x)
        if self.pooler is not None:
            x = torch.tanh(self.pooler(x))
        return x

    def forward(self, pixels: torch.Tensor, interpolate: bool = False) -> torch.Tensor:
        return self.pool(self.forward_features(pixels, interpolate))  # (B, C)


def init_blocks(blocks: nn.ModuleList, dim: int) -> None:
    """OpenAI CLIP's width- and depth-scaled initialisation (small models learn much faster with it than
    with a fixed std of 0.02): qkv ~ dim^-1/2, MLP in ~ (2 dim)^-1/2, residual outputs also / sqrt(2 depth)."""
    proj_std = dim ** -0.5 * (2 * len(blocks)) ** -0.5
    for block in blocks:
        nn.init.normal_(block.attn.qkv.weight, std=dim ** -0.5)
        nn.init.normal_(block.mlp.fc.weight, std=(2 * dim) ** -0.5)
        nn.init.normal_(block.attn.proj.weight, std=proj_std)
        nn.init.normal_(block.mlp.proj.weight, std=proj_std)
        for m in block.modules():
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)


CLIP_TOWER = dict(activation="quick_gelu", pre_norm=True, patch_bias=False, final_norm="pooled")
register_family("vit", ViTConfig, ViT, "Vision Transformer image encoder")
register_preset("vit-b-32", "vit", "CLIP ViT-B/32 image tower (87,456,000 parameters)", patch_size=32, **CLIP_TOWER)
register_preset("vit-b-16", "vit", "CLIP ViT-B/16 image tower (85,799,424 parameters)", patch_size=16, **CLIP_TOWER)
register_preset("vit-base-16", "vit", "ViT-Base/16 (HF ViTModel layout, ImageNet-21k style)", patch_size=16,
                norm_eps=1e-12, pooler=True, image_mean=[0.5] * 3, image_std=[0.5] * 3)
register_preset("vit-tiny", "vit", "64px, patch 8, 4 layers, width 192: trains on a CPU in minutes",
                image_size=64, patch_size=8, dim=192, depth=4, heads=3, mlp_hidden=768)
register_preset("vit-nano", "vit", "32px, patch 8, 2 layers, width 32: tests",
                image_size=32, patch_size=8, dim=32, depth=2, heads=4, mlp_hidden=64)
