"""DiT: a diffusion Transformer denoiser on the shared block (adaLN-zero).

Latent or pixel patches are tokens; every block is [self-attention, cross-attention to the text tokens, MLP],
each branch's normed input scaled and shifted, and its output gated, by a conditioning vector = timestep
embedding + pooled text (`Modulation`, zero-initialised, so every block starts as the identity and the model
predicts zeros). `forward(x_t (B, C, H, W), t (B,), text_states (B, L, D_txt), text_mask (B, L))` returns
the prediction (B, C, H, W) (noise, v or flow velocity: the objective is the pipeline's choice).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..nn import BlockConfig, BlockInputs, run_blocks, transformer_block
from ..nn.builders import transformer_block_plain_cross
from ..nn.vision import PatchEmbed
from .registry import register_family, register_preset

POOLINGS = ("mean", "eot", "attention")


@dataclass
class DiTConfig:
    sample_size: int = 32      # side in pixels (pixel space) or latents (latent space)
    in_channels: int = 3
    patch_size: int = 2
    dim: int = 384
    depth: int = 12
    heads: int = 6
    mlp_ratio: float = 4.0
    text_dim: int = 512        # width of the text encoder's states
    dropout: float = 0.0
    learn_sigma: bool = False  # also predict a variance (2x output channels)
    conv_out: int = 0          # > 0: + a residual head: tokens -> this many channels per pixel -> two 3x3 convs
    conv_skip: bool = False    # the conv head also reads the noisy input x_t per pixel (a UNet's full-res skip)
    # the text path (docs/text_to_image.md, "the conditioning path"); the defaults are DiT's
    cross_modulated: bool = True  # False: PixArt-style cross-attention, no shift/scale/gate (out-proj zero-init)
    pooling: str = "mean"      # pooled text for adaLN: mean over positions | eot (last real token: needs the mask)
    #                            | attention (a learned 4-head attention pooling)
    in_context: bool = False   # also join the projected text tokens to the image tokens in self-attention

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.conv_out < 0:
            raise ValueError(f"conv_out must be >= 0, got {self.conv_out}")
        if self.conv_skip and not self.conv_out:
            raise ValueError("conv_skip feeds x_t to the conv head: it needs conv_out > 0")
        if self.sample_size % self.patch_size:
            raise ValueError(f"sample_size {self.sample_size} is not divisible by patch_size {self.patch_size}")

    @property
    def grid(self) -> int:
        return self.sample_size // self.patch_size

    @property
    def out_channels(self) -> int:
        return self.in_channels * (2 if self.learn_sigma else 1)

    def block_config(self) -> BlockConfig:
        return BlockConfig(dim=self.dim, n_heads=self.heads, mlp_hidden=int(self.mlp_ratio * self.dim),
                           activation="gelu_tanh", norm_eps=1e-6, prenorm=True, dropout=self.dropout,
                           cross_attention=True, cross_dim=self.dim, cond_dim=self.dim)


class AttentionPool(nn.Module):
    """Learned-query attention pooling of text states: (B, L, D), mask (B, L) | None -> (B, D)."""

    def __init__(self, dim: int, heads: int = 4):
        super().__init__()
        if dim % heads:
            raise ValueError(f"text width {dim} is not divisible by {heads} pooling heads")
        self.heads = heads
        self.query = nn.Parameter(torch.zeros(heads, dim // heads))  # zero: starts as the (masked) mean
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)

    def forward(self, states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, L, D = states.shape
        h = self.heads
        k = self.key(states).view(B, L, h, D // h)  # (B, L, H, Dh)
        v = self.value(states).view(B, L, h, D // h)
        scores = torch.einsum("blhd,hd->bhl", k, self.query) / math.sqrt(D // h)  # (B, H, L)
        if mask is not None:
            keep = mask.bool() | ~mask.bool().any(-1, keepdim=True)  # an empty row attends to everything
            scores = scores.masked_fill(~keep[:, None], float("-inf"))
        w = scores.softmax(-1)  # (B, H, L)
        return torch.einsum("bhl,blhd->bhd", w, v).reshape(B, D)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) timesteps (floats allowed) -> (B, dim) sinusoidal features (cos first, as DiT / diffusers)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    ang = t.float()[:, None] * freqs[None]  # (B, D/2)
    emb = torch.cat([torch.cos(ang), torch.sin(ang)], dim=-1)
    return torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1) if dim % 2 else emb


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """(grid*grid, dim) fixed 2-D sine-cosine positions (half the width for rows, half for columns)."""
    def one_d(pos: torch.Tensor, d: int) -> torch.Tensor:
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2))
        out = pos.double()[:, None] * omega[None]
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)

    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.cat([one_d(ys.flatten(), dim // 2), one_d(xs.flatten(), dim // 2)], dim=1).float()


class DiT(nn.Module):
    """Patchify -> adaLN-zero blocks with text cross-attention -> adaLN final layer -> unpatchify."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = c = config
        self.patch_embed = PatchEmbed(c.in_channels, c.dim, c.patch_size)
        self.register_buffer("pos", sincos_2d(c.grid, c.dim), persistent=False)  # (N, D)
        self.t_embed = nn.Sequential(nn.Linear(c.dim, c.dim), nn.SiLU(), nn.Linear(c.dim, c.dim))
        self.text_proj = nn.Linear(c.text_dim, c.dim)      # text tokens -> cross-attention memory
        self.text_pool = nn.Linear(c.text_dim, c.dim)      # pooled text -> conditioning vector
        self.pool_attn = AttentionPool(c.text_dim) if c.pooling == "attention" else None
        self.text_ctx = nn.Linear(c.text_dim, c.dim) if c.in_context else None  # text tokens in self-attention
        build = transformer_block if c.cross_modulated else transformer_block_plain_cross
        self.blocks = nn.ModuleList(build(c.block_config()) for _ in range(c.depth))
        self.norm_out = nn.LayerNorm(c.dim, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(c.dim, 2 * c.dim)         # final shift and scale
        self.proj_out = nn.Linear(c.dim, c.patch_size ** 2 * c.out_channels)
        self.proj_feat = self.conv_out = None
        if c.conv_out:  # U-ViT-style residual head: pixels see their neighbours across patch borders
            self.proj_feat = nn.Linear(c.dim, c.patch_size ** 2 * c.conv_out)
            head_in = c.conv_out + (c.in_channels if c.conv_skip else 0)
            self.conv_out = nn.Sequential(nn.Conv2d(head_in, c.conv_out, 3, padding=1), nn.SiLU(),
                                          nn.Conv2d(c.conv_out, c.out_channels, 3, padding=1))
        zero = (self.ada_out, self.proj_out) + (() if self.conv_out is None else (self.conv_out[-1],))
        for m in self.modules():
            if isinstance(m, nn.Linear) and m not in zero:
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.xavier_uniform_(self.patch_embed.weight.view(c.dim, -1))
        for m in zero:  # adaLN-zero: the model starts predicting zeros
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
        for block in self.blocks:
            for name, m in block.named_children():
                if name.endswith("_mod"):
                    nn.init.zeros_(m.linear.weight)
                    nn.init.zeros_(m.linear.bias)
            if not c.cross_modulated:  # PixArt: an ungated cross-attention starts as the identity by its out-proj
                nn.init.zeros_(block.cross_attn.proj.weight)
                nn.init.zeros_(block.cross_attn.proj.bias)

    @property
    def text_dim(self) -> int:
        """Width of the text states the denoiser reads (the text tower's width)."""
        return self.config.text_dim

    def condition(self, t: torch.Tensor, text_states: torch.Tensor, text_mask: torch.Tensor | None) -> torch.Tensor:
        """(B,) timesteps + (B, L, D_txt) text -> (B, D) conditioning vector."""
        pooled = self.pool_text(text_states, text_mask)  # (B, D_txt)
        return self.t_embed(timestep_embedding(t, self.config.dim).to(text_states.dtype)) + self.text_pool(pooled)

    def pool_text(self, text_states: torch.Tensor, text_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, L, D_txt) -> (B, D_txt) by `config.pooling`."""
        if self.pool_attn is not None:
            return self.pool_attn(text_states, text_mask)
        if self.config.pooling == "eot":
            if text_mask is None:
                raise ValueError("pooling 'eot' reads the last real token: pass the text mask (use_text_mask)")
            last = (text_mask.long().sum(1) - 1).clamp(min=0)  # (B,) a row with no text reads position 0
            return text_states[torch.arange(len(last), device=last.device), last]
        m = torch.ones(text_states.shape[:2], device=text_states.device) if text_mask is None else text_mask
        m = m.to(text_states.dtype)[..., None]  # (B, L, 1)
        return (text_states * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, D_txt)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        # (B, N, p*p*C) -> (B, C, H, W)
        c = self.config
        B, g, p = x.shape[0], c.grid, c.patch_size
        ch = x.shape[-1] // (p * p)
        x = x.reshape(B, g, g, p, p, ch).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(B, ch, g * p, g * p)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, text_states: torch.Tensor,
                text_mask: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        if x_t.shape[1:] != (c.in_channels, c.sample_size, c.sample_size):
            raise ValueError(f"expected x_t (B, {c.in_channels}, {c.sample_size}, {c.sample_size}), got "
                             f"{tuple(x_t.shape)}")
        t = torch.as_tensor(t, device=x_t.device)
        if t.dim() == 0:
            t = t.expand(x_t.shape[0])
        x = self.patch_embed.tokens(x_t) + self.pos.to(x_t.dtype)  # (B, N, D)
        cond = self.condition(t, text_states, text_mask)  # (B, D)
        memory_mask = None if text_mask is None else text_mask.bool()[:, None, None, :]  # (B, 1, 1, L)
        if memory_mask is not None:  # a row with no text (CFG's unconditional pass) attends to everything
            memory_mask = memory_mask | ~memory_mask.any(-1, keepdim=True)
        ctx = BlockInputs(memory=self.text_proj(text_states), memory_mask=memory_mask, cond=cond)
        n_img = x.shape[1]
        if self.text_ctx is not None:  # in-context text: (B, N + L, D); padding keys masked when a mask is given
            x = torch.cat([x, self.text_ctx(text_states)], dim=1)
            if text_mask is not None:
                keys = torch.cat([torch.ones_like(text_mask[:, :1]).expand(-1, n_img), text_mask], dim=1)
                ctx.key_mask = keys  # (B, N + L)
        x = run_blocks(self.blocks, x, ctx)[:, :n_img]  # (B, N, D)
        shift, scale = self.ada_out(nn.functional.silu(cond))[:, None].chunk(2, dim=-1)  # (B, 1, D) each
        x = self.norm_out(x) * (1 + scale) + shift  # (B, N, D)
        out = self.unpatchify(self.proj_out(x))  # (B, C, H, W)
        if self.conv_out is not None:
            feat = self.unpatchify(self.proj_feat(x))  # (B, conv_out, H, W)
            if c.conv_skip:
                feat = torch.cat([feat, x_t.to(feat.dtype)], dim=1)  # (B, conv_out + C_in, H, W)
            out = out + self.conv_out(feat)  # (B, C, H, W)
        return out


register_family("dit", DiTConfig, DiT, "diffusion Transformer denoiser (adaLN-zero, text cross-attention)")
register_preset("dit-s-2", "dit", "DiT-S/2 shape: 12 layers, width 384, 6 heads, patch 2", depth=12, dim=384,
                heads=6, patch_size=2)
register_preset("dit-b-2", "dit", "DiT-B/2 shape: 12 layers, width 768, 12 heads, patch 2", depth=12, dim=768,
                heads=12, patch_size=2)
register_preset("dit-tiny", "dit", "CPU size for 32px shapes: 6 layers, width 192, 4px patches",
                sample_size=32, patch_size=4, dim=192, depth=6, heads=4, text_dim=128)
register_preset("dit-nano", "dit", "tests: 2 layers, width 48, 16px, 4px patches", sample_size=16, patch_size=4,
                dim=48, depth=2, heads=4, text_dim=32)
