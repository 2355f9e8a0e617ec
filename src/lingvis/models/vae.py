"""A KL autoencoder with the layout of diffusers' `AutoencoderKL` (the Stable Diffusion VAE): a conv encoder
of ResBlock stages to a diagonal Gaussian over latents, and a mirrored decoder; both with a single-head
self-attention mid block (the shared attention). Latents for diffusion are `(z - shift_factor) * scaling_factor`."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import Attention
from .registry import register_family, register_preset
from .unet_blocks import ACTIVATIONS, Downsample, ResBlock, Upsample, conv2d


@dataclass
class VAEConfig:
    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 4
    block_out_channels: list = field(default_factory=lambda: [128, 256, 512, 512])
    layers_per_block: int = 2
    norm_num_groups: int = 32
    act_fn: str = "silu"
    sample_size: int = 512
    scaling_factor: float = 0.18215
    shift_factor: float | None = None
    use_quant_conv: bool = True
    use_post_quant_conv: bool = True
    mid_block_add_attention: bool = True

    def __post_init__(self):
        if self.act_fn not in ACTIVATIONS:
            raise ValueError(f"act_fn must be one of {sorted(ACTIVATIONS)}, got {self.act_fn!r}")
        for c in self.block_out_channels:
            if c % self.norm_num_groups:
                raise ValueError(f"block width {c} is not divisible by norm_num_groups {self.norm_num_groups}")

    @property
    def downscale(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)


class MidAttention(nn.Module):
    """GroupNorm then single-head self-attention over the H*W pixels, residual."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.attn = Attention(channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.norm(x).reshape(B, C, H * W).transpose(1, 2)  # (B, N, C)
        h = self.attn(h).transpose(1, 2).reshape(B, C, H, W)
        return x + h


class Mid(nn.Module):
    def __init__(self, c: int, groups: int, act: str, attention: bool):
        super().__init__()
        self.res = nn.ModuleList(ResBlock(c, c, None, groups, 1e-6, act) for _ in range(2))
        self.attn = MidAttention(c, groups) if attention else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.res[0](x, None)
        if self.attn is not None:
            x = self.attn(x)
        return self.res[1](x, None)


class Level(nn.Module):
    def __init__(self, res: list[ResBlock], sampler: nn.Module | None):
        super().__init__()
        self.res, self.sampler = nn.ModuleList(res), sampler

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for r in self.res:
            x = r(x, None)
        return self.sampler(x) if self.sampler is not None else x


class Encoder(nn.Module):
    def __init__(self, c: VAEConfig):
        super().__init__()
        w, g, n = c.block_out_channels, c.norm_num_groups, len(c.block_out_channels)
        self.conv_in = nn.Conv2d(c.in_channels, w[0], 3, padding=1)
        self.down = nn.ModuleList(
            Level([ResBlock(w[max(i - 1, 0)] if j == 0 else w[i], w[i], None, g, 1e-6, c.act_fn)
                   for j in range(c.layers_per_block)], Downsample(w[i], padding=0) if i < n - 1 else None)
            for i in range(n))
        self.mid = Mid(w[-1], g, c.act_fn, c.mid_block_add_attention)
        self.norm_out = nn.GroupNorm(g, w[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(w[-1], 2 * c.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))  # (B, 2 Z, H/f, W/f)


class Decoder(nn.Module):
    def __init__(self, c: VAEConfig):
        super().__init__()
        w, g, n = c.block_out_channels[::-1], c.norm_num_groups, len(c.block_out_channels)
        self.conv_in = nn.Conv2d(c.latent_channels, w[0], 3, padding=1)
        self.mid = Mid(w[0], g, c.act_fn, c.mid_block_add_attention)
        self.up = nn.ModuleList(
            Level([ResBlock(w[max(i - 1, 0)] if j == 0 else w[i], w[i], None, g, 1e-6, c.act_fn)
                   for j in range(c.layers_per_block + 1)], Upsample(w[i]) if i < n - 1 else None)
            for i in range(n))
        self.norm_out = nn.GroupNorm(g, w[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(w[-1], c.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() and z.device.type == "cpu":  # CPU inference: channels-last (see unet.py)
            z = z.contiguous(memory_format=torch.channels_last)
        h = self.mid(conv2d(self.conv_in, z))
        for level in self.up:
            h = level(h)
        return conv2d(self.conv_out, F.silu(self.norm_out(h))).contiguous()  # (B, C, H, W)


class AutoencoderKL(nn.Module):
    """`encode(x) -> (mean, logvar)`, `decode(z) -> x`; `to_latents` / `from_latents` apply the diffusion
    scaling; `forward(x, generator)` -> (reconstruction, mean, logvar) for training."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        self.config = c = config
        self.encoder, self.decoder = Encoder(c), Decoder(c)
        z = c.latent_channels
        self.quant_conv = nn.Conv2d(2 * z, 2 * z, 1) if c.use_quant_conv else None
        self.post_quant_conv = nn.Conv2d(z, z, 1) if c.use_post_quant_conv else None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        if self.quant_conv is not None:
            h = self.quant_conv(h)
        mean, logvar = h.chunk(2, dim=1)  # (B, Z, h, w) each
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z)

    def to_latents(self, x: torch.Tensor, generator: torch.Generator | None = None, sample: bool = True) -> torch.Tensor:
        """Images in [-1, 1] -> scaled latents (a posterior sample, or its mean)."""
        mean, logvar = self.encode(x)
        z = mean
        if sample:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
            z = mean + torch.exp(0.5 * logvar) * noise
        shift = self.config.shift_factor or 0.0
        return (z - shift) * self.config.scaling_factor

    def from_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images (about [-1, 1])."""
        return self.decode(latents / self.config.scaling_factor + (self.config.shift_factor or 0.0))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        mean, logvar = self.encode(x)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
        return self.decode(mean + torch.exp(0.5 * logvar) * noise), mean, logvar


register_family("vae", VAEConfig, AutoencoderKL, "KL autoencoder (diffusers AutoencoderKL layout)")
register_preset("vae-shapes", "vae", "64px -> 16x16x4 latents (3 levels, width 32/64/64) for the shapes world",
                block_out_channels=[32, 64, 64], layers_per_block=1, norm_num_groups=16, sample_size=64,
                scaling_factor=1.0)
register_preset("vae-shapes-32", "vae", "32px -> 16x16x4 latents (167,959 parameters; 2 levels, width 16/32): "
                "the latent space tried for the 32px shapes (benchmarks.t2i_latent_vae; docs/text_to_image.md)",
                block_out_channels=[16, 32], layers_per_block=1, norm_num_groups=8, sample_size=32,
                scaling_factor=1.0)
register_preset("vae-sd", "vae", "Stable Diffusion VAE layout (83,653,863 parameters)")
