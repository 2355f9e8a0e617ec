"""Video Transformer: tubelet (or per-frame patch) embedding + the shared block with joint or divided
space-time attention. Presets match VideoMAE (tubelets of 2 frames, fixed sinusoidal positions, joint
attention, mean pooling) and TimeSformer (per-frame patches, a class token, learned space and time
embeddings, divided attention).

`forward(pixel_values (B, F, C, H, W)) -> logits (B, L)` with a classification head (`labels`), else the
pooled (B, D) embedding; `forward_features` returns the tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import BlockConfig, BlockInputs, make_norm, run_blocks, transformer_block
from ..nn.builders import divided_space_time_block
from ..nn.position import sinusoidal_table
from .registry import register_family, register_preset
from .video_fast import divided_forward, joint_forward, tubelet_tokens

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class VideoConfig:
    image_size: int = 224
    patch_size: int = 16
    channels: int = 3
    frames: int = 16
    tubelet: int = 2                 # frames per token (Conv3d); 1 = per-frame patches (Conv2d)
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_hidden: int = 3072
    activation: str = "gelu"
    norm_eps: float = 1e-12
    attention: str = "joint"         # joint: all tokens attend to all | divided: time, then space (TimeSformer)
    cls_token: bool = False
    positions: str = "sinusoidal"    # sinusoidal: fixed over all tokens (VideoMAE) | learned: space + time tables
    pool: str = "mean"               # mean of the tokens (then `fc_norm`) | cls (after the final norm)
    qkv_bias: bool = True
    labels: list[str] | None = None  # class names: adds a linear classifier on the pooled vector
    dropout: float = 0.0
    image_mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))

    def __post_init__(self):
        for name, value, allowed in (("attention", self.attention, ("joint", "divided")),
                                     ("positions", self.positions, ("sinusoidal", "learned")),
                                     ("pool", self.pool, ("mean", "cls"))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}")
        if self.frames % self.tubelet:
            raise ValueError(f"frames {self.frames} is not divisible by tubelet {self.tubelet}")
        if self.attention == "divided" and self.tubelet != 1:
            raise ValueError("divided space-time attention needs per-frame patches (tubelet=1)")
        if self.pool == "cls" and not self.cls_token:
            raise ValueError("pool='cls' needs cls_token=True")
        if self.labels is not None:
            self.labels = [str(x) for x in self.labels]

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def time_steps(self) -> int:
        return self.frames // self.tubelet

    def block_config(self) -> BlockConfig:
        return BlockConfig(dim=self.dim, n_heads=self.heads, mlp_hidden=self.mlp_hidden, activation=self.activation,
                           norm_eps=self.norm_eps, prenorm=True, dropout=self.dropout, qkv_bias=self.qkv_bias)


class VideoTransformer(nn.Module):
    """Space-time tokens -> blocks -> pooled embedding (-> class logits)."""

    def __init__(self, config: VideoConfig):
        super().__init__()
        self.config = c = config
        k = (c.tubelet, c.patch_size, c.patch_size)
        self.patch_embed = nn.Conv3d(c.channels, c.dim, k, k)
        n_space, n_time = c.grid ** 2, c.time_steps
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim)) if c.cls_token else None
        if c.positions == "sinusoidal":
            table = sinusoidal_table(n_space * n_time, c.dim, interleave=True, dtype=torch.float64)
            self.register_buffer("pos_table", table, persistent=False)  # (N*T, D), fixed
            self.pos_embed = self.time_embed = None
        else:
            self.pos_embed = nn.Parameter(torch.zeros(1, n_space + (1 if c.cls_token else 0), c.dim))
            self.time_embed = nn.Parameter(torch.zeros(1, n_time, c.dim))
        self.drop = nn.Dropout(c.dropout)
        build = divided_space_time_block if c.attention == "divided" else transformer_block
        self.blocks = nn.ModuleList(build(c.block_config()) for _ in range(c.depth))
        self.norm = make_norm("layernorm", c.dim, c.norm_eps)  # final norm: pooled mean (fc_norm) or tokens
        self.head = nn.Linear(c.dim, len(c.labels)) if c.labels else None
        for p in (self.cls_token, self.pos_embed, self.time_embed):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv3d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def out_dim(self) -> int:
        return self.config.dim

    def embed_check(self, pixel_values: torch.Tensor) -> None:
        """Raise a ValueError naming the shape when pixel_values is not (B, frames, C, size, size)."""
        c = self.config
        if pixel_values.dim() != 5 or pixel_values.shape[2] != c.channels:
            raise ValueError(f"expected pixel_values (B, F, {c.channels}, H, W), got {tuple(pixel_values.shape)}")
        _, Fr, _, H, W = pixel_values.shape
        if (Fr, H, W) != (c.frames, c.image_size, c.image_size):
            raise ValueError(f"clip of {Fr} frames of {H}x{W} does not match the model's {c.frames} frames of "
                             f"{c.image_size}x{c.image_size}")

    def embed(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """(B, F, C, H, W) -> tokens (B, c + N*T, D) and the layout for the blocks."""
        c = self.config
        self.embed_check(pixel_values)
        B = pixel_values.shape[0]
        x = tubelet_tokens(self.patch_embed, pixel_values)  # (B, T, N, D); in inference one GEMM (video_fast.py)
        T, N = x.shape[1], x.shape[2]
        # contiguous: the conv's channel-first output, only transposed, would keep the whole residual stream
        # in a strided layout (slower adds and norms, a copy before every linear)
        if c.attention == "joint":
            x = x.reshape(B, T * N, -1).contiguous()  # (B, T*N, D) time-major (VideoMAE's layout)
        else:
            x = x.transpose(1, 2).contiguous()  # (B, N, T, D) patch-major (TimeSformer's layout)
        if c.positions == "sinusoidal":
            table = self.pos_table.to(x.dtype)  # (T*N, D) over time-major tokens
            x = x + (table if c.attention == "joint" else table.view(T, N, -1).transpose(0, 1))  # patch-major: (N, T, D)
        else:
            space = self.pos_embed[:, 1:] if c.cls_token else self.pos_embed  # (1, N, D)
            if c.attention == "joint":
                x = x.view(B, T, N, -1) + space[:, None] + self.time_embed[:, :, None]
            else:
                x = x + space[:, :, None] + self.time_embed[:, None]
            x = x.reshape(B, T * N, -1)
        x = x.reshape(B, T * N, -1)
        if c.cls_token:
            cls = self.cls_token + (self.pos_embed[:, :1] if self.pos_embed is not None else 0)
            x = torch.cat([cls.expand(B, 1, -1), x], dim=1)
        return self.drop(x), {"frames": T, "patches": N, "cls": int(c.cls_token)}

    def forward_features(self, pixel_values: torch.Tensor, output_hidden_states: bool = False):
        """Tokens (B, c + N*T, D) after the blocks (final-normed unless pooling by mean)."""
        x, layout = self.embed(pixel_values)
        hidden = [] if output_hidden_states else None
        x = run_blocks(self.blocks, x, BlockInputs(extras=layout), hidden)
        if self.config.pool == "cls":
            x = self.norm(x)
        return (x, hidden) if output_hidden_states else x

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.config.pool == "cls":
            return tokens[:, 0]
        c = 1 if self.config.cls_token else 0
        return self.norm(tokens[:, c:].mean(dim=1))  # (B, D) VideoMAE's fc_norm of the mean

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        c = self.config
        fast = c.attention == "joint" or (c.pool == "cls" and c.positions == "learned")  # TimeSformer's layout
        if fast and not self.training and not torch.is_grad_enabled():
            self.embed_check(pixel_values)
            run = joint_forward if c.attention == "joint" else divided_forward
            pooled = run(self, pixel_values)  # (B, D) inference forward (models/video_fast.py), same result
        else:
            pooled = self.pool(self.forward_features(pixel_values))  # (B, D)
        return self.head(pooled) if self.head is not None else pooled

    @torch.no_grad()
    def predict(self, pixel_values: torch.Tensor, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-k (label, probability) per clip; needs a classification head."""
        if self.head is None:
            raise ValueError("this video model has no classification head (labels=None)")
        probs = F.softmax(self.forward(pixel_values).float(), dim=-1)
        p, i = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        return [[(self.config.labels[j], float(q)) for q, j in zip(pr.tolist(), ix.tolist())] for pr, ix in zip(p, i)]


register_family("video_transformer", VideoConfig, VideoTransformer,
                "video Transformer: tubelets or frame patches, joint or divided space-time attention")
VIDEOMAE = dict(tubelet=2, attention="joint", positions="sinusoidal", pool="mean", norm_eps=1e-12)
TIMESFORMER = dict(tubelet=1, attention="divided", positions="learned", cls_token=True, pool="cls", norm_eps=1e-6,
                   image_mean=[0.45] * 3, image_std=[0.225] * 3)
register_preset("videomae-b", "video_transformer", "VideoMAE-Base: 16 frames of 224px, 2x16x16 tubelets, 12 layers",
                **VIDEOMAE)
register_preset("timesformer-b", "video_transformer", "TimeSformer-Base: 8 frames of 224px, 16px patches, divided "
                "space-time attention", frames=8, **TIMESFORMER)
register_preset("video-tiny", "video_transformer", "CPU size, divided attention: 8 frames of 32px, 8px patches, "
                "4 layers, width 128", image_size=32, patch_size=8, frames=8, dim=128, depth=4, heads=4,
                mlp_hidden=512, **TIMESFORMER)
register_preset("video-tiny-joint", "video_transformer", "CPU size, VideoMAE-style joint attention: 8 frames of "
                "32px, 2x8x8 tubelets, 4 layers, width 128", image_size=32, patch_size=8, frames=8, dim=128,
                depth=4, heads=4, mlp_hidden=512, **VIDEOMAE)
