"""A text-conditioned UNet with the layout of diffusers' `UNet2DConditionModel` (Stable Diffusion 1.x/2.x):
conv stem, ResBlock + spatial-transformer stages down and up with skip connections, a mid block, and a
sinusoidal timestep embedding. Weights convert 1:1 (interop/diffusers.py).

The denoiser contract every lingvis denoiser keeps:
    denoiser(x_t (B, C, H, W), t (B,), text_states (B, L, D), text_mask (B, L) or None) -> (B, C, H, W).
The UNet also takes text_states of k * B rows for B images (`shares_guidance_input`): classifier-free
guidance then runs the text-independent start of the network (stem, first blocks, first self-attention)
once per image instead of once per prompt; the output has k * B rows, row i * B + j for image j."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..native import group_norm as native_gn
from .registry import register_family, register_preset
from .unet_blocks import (
    ACTIVATIONS,
    Downsample,
    ResBlock,
    SpatialTransformer,
    Stage,
    TimeEmbedding,
    TimeProjections,
    Upsample,
    concat_time_weights,
    conv2d,
    grow,
    timestep_embedding,
)


def _per_level(value, n: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} entries for {n} resolution levels")
        return list(value)
    return [value] * n


@dataclass
class UNetConfig:
    in_channels: int = 4
    out_channels: int = 4
    sample_size: int = 64                  # default latent/pixel side the model was trained at
    block_out_channels: list = field(default_factory=lambda: [320, 640, 1280, 1280])
    down_attention: list = field(default_factory=lambda: [True, True, True, False])  # CrossAttnDownBlock2D or not
    up_attention: list | None = None       # default: the down levels reversed
    mid_block: bool = True                 # UNetMidBlock2DCrossAttn between the down and up paths
    layers_per_block: int | list = 2
    transformer_layers_per_block: int | list = 1
    attention_heads: int | list = 8        # diffusers' `attention_head_dim` (it counts heads)
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    act_fn: str = "silu"
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    use_linear_projection: bool = False
    resnet_time_scale_shift: str = "default"   # default | scale_shift
    mid_block_scale_factor: float = 1.0
    downsample_padding: int = 1
    dropout: float = 0.0
    conv_in_kernel: int = 3
    conv_out_kernel: int = 3
    center_input_sample: bool = False

    def __post_init__(self):
        n = len(self.block_out_channels)
        if n < 1:
            raise ValueError("block_out_channels needs at least one level")
        if len(self.down_attention) != n:
            raise ValueError(f"down_attention has {len(self.down_attention)} entries for {n} levels")
        if self.up_attention is None:
            self.up_attention = list(reversed(self.down_attention))
        if len(self.up_attention) != n:
            raise ValueError(f"up_attention has {len(self.up_attention)} entries for {n} levels")
        for name in ("layers_per_block", "transformer_layers_per_block", "attention_heads"):
            _per_level(getattr(self, name), n, name)
        if self.act_fn not in ACTIVATIONS:
            raise ValueError(f"act_fn must be one of {sorted(ACTIVATIONS)}, got {self.act_fn!r}")
        if self.resnet_time_scale_shift not in ("default", "scale_shift"):
            raise ValueError(f"resnet_time_scale_shift must be default or scale_shift, got "
                             f"{self.resnet_time_scale_shift!r}")
        for c in self.block_out_channels:
            if c % self.norm_num_groups:
                raise ValueError(f"block width {c} is not divisible by norm_num_groups {self.norm_num_groups}")

    @property
    def levels(self) -> int:
        return len(self.block_out_channels)


class UNet(nn.Module):
    """`forward(x_t, t, text_states, text_mask=None) -> prediction` with the shape of x_t."""

    shares_guidance_input = True
    channels_last = True   # inference layout of the feature maps (see forward)

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        widths, n = list(c.block_out_channels), c.levels
        layers = _per_level(c.layers_per_block, n, "layers_per_block")
        depth = _per_level(c.transformer_layers_per_block, n, "transformer_layers_per_block")
        heads = _per_level(c.attention_heads, n, "attention_heads")
        t_dim = widths[0] * 4
        self.conv_in = nn.Conv2d(c.in_channels, widths[0], c.conv_in_kernel, padding=(c.conv_in_kernel - 1) // 2)
        self.time_embed = TimeEmbedding(widths[0], t_dim, c.act_fn)

        def res(c_in, c_out, scale=1.0):
            return ResBlock(c_in, c_out, t_dim, c.norm_num_groups, c.norm_eps, c.act_fn, c.resnet_time_scale_shift,
                            c.dropout, scale)

        def attn(width, level_heads, level_depth):
            return SpatialTransformer(width, level_heads, level_depth, c.cross_attention_dim, c.norm_num_groups,
                                      c.use_linear_projection, c.dropout)

        self.down = nn.ModuleList()
        for i, w in enumerate(widths):
            c_in = widths[max(i - 1, 0)]
            rs = [res(c_in if j == 0 else w, w) for j in range(layers[i])]
            ats = [attn(w, heads[i], depth[i]) for _ in range(layers[i])] if c.down_attention[i] else None
            sampler = Downsample(w, c.downsample_padding) if i < n - 1 else None
            self.down.append(Stage(rs, ats, sampler))
        self.mid = None
        if c.mid_block:
            w = widths[-1]
            self.mid = Stage([res(w, w, c.mid_block_scale_factor), res(w, w, c.mid_block_scale_factor)],
                             [attn(w, heads[-1], depth[-1])], None)
        self.up = nn.ModuleList()
        rw, rl, rh, rd = widths[::-1], layers[::-1], heads[::-1], depth[::-1]
        for i in range(n):
            prev, w, skip_in = rw[max(i - 1, 0)], rw[i], rw[min(i + 1, n - 1)]
            k = rl[i] + 1
            rs = [res((prev if j == 0 else w) + (skip_in if j == k - 1 else w), w) for j in range(k)]
            ats = [attn(w, rh[i], rd[i]) for _ in range(k)] if c.up_attention[i] else None
            self.up.append(Stage(rs, ats, Upsample(w) if i < n - 1 else None))
        self.norm_out = nn.GroupNorm(c.norm_num_groups, widths[0], eps=c.norm_eps)
        self.conv_out = nn.Conv2d(widths[0], c.out_channels, c.conv_out_kernel, padding=(c.conv_out_kernel - 1) // 2)
        self.act = ACTIVATIONS[c.act_fn]

    @property
    def text_dim(self) -> int:
        return self.config.cross_attention_dim

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, text_states: torch.Tensor,
                text_mask: torch.Tensor | None = None) -> torch.Tensor:
        # x: (B, C, H, W); t: (B,) or scalar; text_states: (B, L, D); text_mask: (B, L) 1 = token
        c, B = self.config, x.shape[0]
        t = torch.as_tensor(t, device=x.device)
        t = (t[None] if t.dim() == 0 else t).expand(B)
        if text_states.shape[-1] != c.cross_attention_dim:
            raise ValueError(f"text states of width {text_states.shape[-1]} do not fit cross_attention_dim "
                             f"{c.cross_attention_dim}")
        bias = None
        if text_mask is not None:  # additive, as diffusers: (1 - mask) * -10000
            bias = ((1 - text_mask.to(x.dtype)) * -10000.0)[:, None, None, :]  # (B, 1, 1, L)
        if c.center_input_sample:
            x = 2 * x - 1.0
        if self.channels_last and not torch.is_grad_enabled() and x.device.type == "cpu":
            # CPU inference keeps the feature maps channels-last (B, H, W, C in memory): oneDNN convolutions
            # run without layout reorders and the spatial transformers' (B, H*W, C) views are free
            x = x.contiguous(memory_format=torch.channels_last)
        temb = self.time_embed(timestep_embedding(t, c.block_out_channels[0], c.flip_sin_to_cos,
                                                  c.freq_shift).to(x.dtype))  # (B, 4 C0)
        if not torch.is_grad_enabled() and not torch.compiler.is_compiling():
            temb = self._time_projections(temb)  # every ResBlock's projection in one product
        h = conv2d(self.conv_in, x)
        skips = [h]
        for stage in self.down:
            h, s = stage.down(h, temb, text_states, bias)
            skips += s
        if self.mid is not None:
            h = self.mid.res[0](h, temb)
            h = self.mid.attn[0](h, text_states, bias)
            h = self.mid.res[1](h, temb)
        odd = any(d % (2 ** (c.levels - 1)) for d in x.shape[-2:])
        for stage in self.up:
            mine, skips = skips[-len(stage.res):], skips[:-len(stage.res)]
            size = tuple(skips[-1].shape[2:]) if odd and stage.sampler is not None else None
            h = stage.up(h, mine, temb, text_states, bias, size)
        if self.act is F.silu and not torch.is_grad_enabled() and native_gn.supports(h, self.norm_out):
            h = native_gn.group_norm_nhwc(h, self.norm_out, silu=True, checked=True)  # one pass, channels-last
        else:
            h = self.act(self.norm_out(h))
        out = conv2d(self.conv_out, h).contiguous()
        return grow(out, text_states.shape[0])  # (B, C_out, H, W)

    def _time_projections(self, temb: torch.Tensor) -> TimeProjections:
        """The ResBlocks' time projections of this call as one product, on their weights concatenated (kept on the
        module, remade when any of those weights changes: an optimizer step, `load_state_dict`)."""
        blocks = self.__dict__.get("_time_blocks")
        if blocks is None:
            blocks = self.__dict__["_time_blocks"] = [m for m in self.modules()
                                                      if isinstance(m, ResBlock) and m.time_proj is not None]
        key = tuple((p.data_ptr(), -1 if p.is_inference() else p._version)
                    for b in blocks for p in (b.time_proj.weight, b.time_proj.bias) if p is not None)
        cached = self.__dict__.get("_time_weights")
        if cached is None or cached[0] != key:
            cached = self.__dict__["_time_weights"] = (key, *concat_time_weights(blocks))
        return TimeProjections(temb, self.act, *cached[1:], owner=self)


register_family("unet", UNetConfig, UNet, "text-conditioned UNet (diffusers UNet2DConditionModel layout)")
register_preset("unet-shapes", "unet", "32px pixel-space UNet (32/64/128, attention at 16 and 8 px; the "
                "t2i-shapes denoiser), 4,222,371 parameters",
                in_channels=3, out_channels=3, sample_size=32, block_out_channels=[32, 64, 128],
                down_attention=[False, True, True], layers_per_block=1, attention_heads=4, cross_attention_dim=128,
                norm_num_groups=8)
register_preset("unet-sd15", "unet", "Stable Diffusion 1.5 UNet layout (859,520,964 parameters)")
