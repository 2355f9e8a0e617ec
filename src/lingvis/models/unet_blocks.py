"""Parts of the diffusers-compatible UNet: timestep embedding, ResNet block, spatial transformer (the shared
attention and GEGLU MLP over the pixels of a feature map, with cross-attention to text tokens), down/up
sampling and the down/mid/up stages."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..native import group_norm as native_gn
from ..nn import MLP, Attention, Block, BlockInputs, Branch, packed_conv, upsample_conv
from ..nn.packed_linear import linear as measured_linear

ACTIVATIONS = {"silu": F.silu, "swish": F.silu, "gelu": F.gelu, "mish": F.mish}
_INPLACE = {"silu": lambda x: F.silu(x, inplace=True), "swish": lambda x: F.silu(x, inplace=True),
            "gelu": F.gelu, "mish": lambda x: F.mish(x, inplace=True)}


def _fresh(act: str):
    """The activation, applied in place when no gradient is recorded (inference): the input is always a fresh
    tensor (a norm's or a layer's output), so this saves an allocation and a memory pass."""
    plain, inplace = ACTIVATIONS[act], _INPLACE[act]
    return lambda x: inplace(x) if not torch.is_grad_enabled() else plain(x)


def pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution as a GEMM over the channels: on a channels-last (B, C, H, W) input the (B, H, W, C)
    view is free and the output stays channels-last (no layout conversion, no im2col); otherwise the plain
    convolution."""
    if not x.is_contiguous(memory_format=torch.channels_last) or x.is_contiguous():
        return conv(x)
    w = conv.weight.reshape(conv.out_channels, conv.in_channels)  # (O, C)
    y = measured_linear(x.permute(0, 2, 3, 1), w, conv.bias, conv, "pointwise")  # (B, H, W, O): MKL or oneDNN
    return y.permute(0, 3, 1, 2)  # (B, O, H, W) channels-last


def conv2d(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv(x)`; in inference on a channels-last input, with the weight in oneDNN's blocked layout kept on the
    module (nn/packed_conv.py) or, where that path is off, a channels-last copy of the weight (made once per
    weight version) instead of the per-call conversion PyTorch would do."""
    if torch.is_grad_enabled() or not x.is_contiguous(memory_format=torch.channels_last) or x.is_contiguous():
        return conv(x)
    if packed_conv.eligible(conv, x):
        return packed_conv.conv2d(conv, x)
    w = conv.weight
    if w.is_contiguous(memory_format=torch.channels_last) or torch.compiler.is_compiling():
        return conv(x)  # (a compiled graph lays out its weights itself)
    key = (w.data_ptr(), w._version)
    cached = conv.__dict__.get("_channels_last_weight")
    if cached is None or cached[0] != key:
        cached = (key, w.detach().contiguous(memory_format=torch.channels_last))
        conv.__dict__["_channels_last_weight"] = cached
    return conv._conv_forward(x, cached[1], conv.bias)


def timestep_embedding(t: torch.Tensor, dim: int, flip_sin_to_cos: bool = True, freq_shift: float = 0.0,
                       max_period: int = 10000) -> torch.Tensor:
    """(B,) timesteps (ints or floats) -> (B, dim) sinusoidal features (DDPM / diffusers `Timesteps`)."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32, device=t.device)
    freqs = torch.exp(exponent / (half - freq_shift))  # (half,)
    args = t[:, None].float() * freqs[None, :]  # (B, half)
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb  # (B, dim)


def grow(a: torch.Tensor, n: int) -> torch.Tensor:
    """Tile a (b, ...) batch to n = k * b rows: the text-independent part of a guided batch is computed once
    for the b images and tiled when it meets the k prompts per image (unconditional, conditional)."""
    b = a.shape[0]
    if b == n:
        return a
    if n % b:
        raise ValueError(f"a batch of {b} cannot be tiled to {n} rows")
    if a.dim() == 4 and a.is_contiguous(memory_format=torch.channels_last):
        return torch.cat([a] * (n // b))  # keeps the channels-last layout (`repeat` would not)
    return a.repeat(n // b, *([1] * (a.dim() - 1)))


class TimeEmbedding(nn.Module):
    """Sinusoidal features -> MLP (Linear, act, Linear)."""

    def __init__(self, in_dim: int, dim: int, act: str = "silu"):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(in_dim, dim), nn.Linear(dim, dim)
        self.act = ACTIVATIONS[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in_dim) -> (B, dim)
        return self.fc2(self.act(self.fc1(x)))


class TimeProjections:
    """Every ResBlock's time-embedding projection `time_proj(act(temb))` of one UNet call as one product, for
    inference: `act(temb)` once, one (B, T) x (T, sum of C_out) product on the blocks' weights concatenated
    (`concat_time_weights`), tiled once per row count; `of(block, rows)` is the block's (rows, C_out) view. The
    `shapes` UNet has eleven ResBlocks: eleven activations, products and tilings a call become one each."""

    def __init__(self, temb: torch.Tensor, act, weight: torch.Tensor, bias: torch.Tensor | None,
                 offsets: dict[int, tuple[int, int]], owner: nn.Module):
        # temb: (B, T); weight: (sum N, T); offsets: id(block) -> (first column, N)
        self.offsets = offsets
        self.rows = {temb.shape[0]: measured_linear(act(temb), weight, bias, owner, "time_proj")}  # (B, sum N)

    def of(self, block: nn.Module, rows: int) -> torch.Tensor:
        """The block's projection tiled to `rows` (a (rows, N) view of the shared product)."""
        table = self.rows.get(rows)
        if table is None:
            table = self.rows[rows] = grow(next(iter(self.rows.values())), rows)  # (rows, sum N)
        start, n = self.offsets[id(block)]
        return table[:, start:start + n]


def concat_time_weights(blocks: list["ResBlock"]) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """The blocks' `time_proj` weights stacked (sum N, T), their biases (sum N,) (None when none has one; zeros
    for a block without) and each block's (first row, N) by id."""
    ws = [b.time_proj.weight.detach() for b in blocks]
    biased = any(b.time_proj.bias is not None for b in blocks)
    bias = (torch.cat([b.time_proj.bias.detach() if b.time_proj.bias is not None else ws[i].new_zeros(ws[i].shape[0])
                       for i, b in enumerate(blocks)]) if biased else None)
    offsets, start = {}, 0
    for b, w in zip(blocks, ws):
        offsets[id(b)] = (start, w.shape[0])
        start += w.shape[0]
    return torch.cat(ws), bias, offsets


class ResBlock(nn.Module):
    """GroupNorm-act-conv twice, the time embedding added (or scale/shift) between them; 1x1 shortcut when
    the width changes."""

    def __init__(self, c_in: int, c_out: int, t_dim: int | None, groups: int, eps: float, act: str = "silu",
                 time_norm: str = "default", dropout: float = 0.0, out_scale: float = 1.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in, eps=eps)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time_norm = time_norm
        self.time_proj = None if t_dim is None else nn.Linear(t_dim, c_out * (2 if time_norm == "scale_shift" else 1))
        self.norm2 = nn.GroupNorm(groups, c_out, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None
        self.act, self.act_fresh = ACTIVATIONS[act], _fresh(act)
        self.out_scale = out_scale

    def _time(self, temb: "torch.Tensor | TimeProjections", rows: int) -> torch.Tensor:
        """time_proj(act(temb)) tiled to `rows`: (rows, C_out or 2 C_out); from the shared product when given one."""
        if isinstance(temb, TimeProjections):
            return temb.of(self, rows)
        return grow(self.time_proj(self.act(temb)), rows)

    def forward(self, x: torch.Tensor, temb: "torch.Tensor | TimeProjections | None") -> torch.Tensor:
        # x: (B, C_in, H, W); temb: (B, T), or the UNet call's shared projections (inference)
        fused = (self.act is F.silu and not torch.is_grad_enabled()  # channels-last inference: one kernel
                 and native_gn.supports(x, self.norm1))
        h = (native_gn.group_norm_nhwc(x, self.norm1, silu=True, checked=True) if fused
             else self.act_fresh(self.norm1(x)))
        h = conv2d(self.conv1, h)  # (B, C_out, H, W)
        if fused and self.time_norm != "scale_shift" and native_gn.supports(h, self.norm2):
            # silu(norm2(h + emb)) in one pass, written over conv1's fresh output
            emb = None if self.time_proj is None else self._time(temb, h.shape[0])  # (B, C_out)
            h = native_gn.group_norm_nhwc(h, self.norm2, add=emb, silu=True, out=h, checked=True)
        else:
            if self.time_proj is not None:
                emb = self._time(temb, h.shape[0])[:, :, None, None]  # (B, C_out or 2 C_out, 1, 1)
                if self.time_norm == "scale_shift":
                    scale, shift = emb.chunk(2, dim=1)
                    h = self.norm2(h) * (1 + scale) + shift
                else:
                    h = self.norm2(h + emb if torch.is_grad_enabled() else h.add_(emb))  # h: conv1's fresh output
            else:
                h = self.norm2(h)
            h = self.act_fresh(h)
        h = self.dropout(h)
        skip = pointwise(self.shortcut, x) if self.shortcut is not None else x  # (B, C_out, H, W)
        if packed_conv.eligible(self.conv2, h):  # conv2 + skip in one oneDNN call (into the shortcut's fresh output)
            h = packed_conv.conv2d(self.conv2, h, add=skip, add_into=self.shortcut is not None)
        else:
            h = conv2d(self.conv2, h)
            h = h + skip if torch.is_grad_enabled() else h.add_(skip)
        return h / self.out_scale if self.out_scale != 1.0 else h


def _attention(dim: int, heads: int, kv_dim: int | None = None, dropout: float = 0.0) -> Attention:
    """The shared attention in diffusers' layout: q/k/v projections without bias, output projection with bias."""
    return Attention(dim, heads, bias=False, dropout=dropout, cross=kv_dim is not None, kv_dim=kv_dim, out_bias=True)


class GEGLU(MLP):
    """The shared GEGLU MLP. In inference `fc` runs as two products, each on its half of the weight: the gate
    half through oneDNN with the GELU fused into it (no separate GELU pass over the (B, T, H) gate) and the
    other half plainly; the product is written into the gate's buffer, which is contiguous, so `proj` reads it
    without the copy a strided half of one (B, T, 2H) buffer needed. `t2i_speed`'s `shapes` config: the GELU
    pass and the copy were ~45 of ~1320 CPU-ms a 10-step run (1 thread, per-op thread CPU time)."""

    def forward(self, x: torch.Tensor, ctx=None) -> torch.Tensor:  # (B, T, C)
        if torch.is_grad_enabled():
            return super().forward(x, ctx)
        w, b = self.fc.weight, self.fc.bias  # (2H, C), (2H,) or None
        H = w.shape[0] // 2
        gate = measured_linear(x, w[:H], None if b is None else b[:H], self.fc, "gate", epilogue="gelu")  # (B, T, H)
        up = measured_linear(x, w[H:], None if b is None else b[H:], self.fc, "up")  # (B, T, H)
        return self.dropout(self.proj(gate.mul_(up)))  # (B, T, C)


class TilingCrossAttention(Attention):
    """Cross-attention whose queries are tiled to the text batch first (see `grow`): a guided batch meets its
    k prompts per image here."""

    def forward(self, x: torch.Tensor, ctx: BlockInputs | None = None, **inputs) -> torch.Tensor:
        ctx = ctx if ctx is not None else BlockInputs(**inputs)
        return super().forward(grow(x, ctx.memory.shape[0]), ctx)


def transformer_block(dim: int, heads: int, cross_dim: int, dropout: float = 0.0) -> Block:
    """The shared block in diffusers' BasicTransformerBlock layout: pre-norm [self-attention (`norm1`, `attn`),
    cross-attention to the text (`norm2`, `cross_attn`), GEGLU MLP (`norm3`, `mlp`)] over (B, N, C) pixels."""
    cross = TilingCrossAttention(dim, heads, bias=False, dropout=dropout, cross=True, kv_dim=cross_dim, out_bias=True)
    return Block([Branch("attn", _attention(dim, heads, dropout=dropout), "norm1", nn.LayerNorm(dim)),
                  Branch("cross_attn", cross, "norm2", nn.LayerNorm(dim)),
                  Branch("mlp", GEGLU(dim, 4 * dim, "geglu", bias=True, dropout=dropout), "norm3", nn.LayerNorm(dim))])


class SpatialTransformer(nn.Module):
    """GroupNorm, 1x1 conv (or linear) in, transformer blocks over the H*W pixels, projection out, residual."""

    def __init__(self, channels: int, heads: int, depth: int, cross_dim: int, groups: int, linear: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels do not split into {heads} attention heads")
        self.linear = linear
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        make = (lambda: nn.Linear(channels, channels)) if linear else (lambda: nn.Conv2d(channels, channels, 1))
        self.proj_in = make()
        self.blocks = nn.ModuleList(transformer_block(channels, heads, cross_dim, dropout) for _ in range(depth))
        self.proj_out = make()

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_bias: torch.Tensor | None) -> torch.Tensor:
        B, C, H, W = x.shape
        h = native_gn.group_norm_nhwc(x, self.norm, checked=True) if native_gn.supports(x, self.norm) else self.norm(x)
        h = h.permute(0, 2, 3, 1).reshape(B, H * W, C)  # (B, N, C); a view when channels-last
        if self.linear:
            h = self.proj_in(h)
        else:  # the 1x1 convolution as a GEMM over the pixels
            h = measured_linear(h, self.proj_in.weight.reshape(C, C), self.proj_in.bias, self.proj_in, "pointwise")
        ctx = BlockInputs(memory=text, memory_mask=text_bias)
        for block in self.blocks:
            h = block(h, ctx)
        if self.linear:
            h = self.proj_out(h)
        else:
            h = measured_linear(h, self.proj_out.weight.reshape(C, C), self.proj_out.bias, self.proj_out, "pointwise")
        h = h.reshape(h.shape[0], H, W, C).permute(0, 3, 1, 2)  # (B or k B, C, H, W), channels-last
        if not x.is_contiguous(memory_format=torch.channels_last) or x.is_contiguous():
            h = h.contiguous()
        skip = grow(x, h.shape[0])
        return h + skip if torch.is_grad_enabled() else h.add_(skip)  # h: proj_out's fresh output


class Downsample(nn.Module):
    """Stride-2 3x3 convolution (padding 0 pads right/bottom by one first, as diffusers)."""

    def __init__(self, channels: int, padding: int = 1):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return conv2d(self.conv, x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 (or to `size`) then a 3x3 convolution; in channels-last inference the x2 case runs as
    one 2x2 convolution on the small map (nn/upsample_conv.py: about half the work, no upsampled copy)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        if size is None and upsample_conv.supports(self.conv, x):  # inference: one 2x2 conv on the small map
            return upsample_conv.upsample_conv(self.conv, x)  # (B, C, 2H, 2W) channels-last
        x = F.interpolate(x, scale_factor=2.0, mode="nearest") if size is None else F.interpolate(x, size=size,
                                                                                                  mode="nearest")
        return conv2d(self.conv, x)


class Stage(nn.Module):
    """One resolution level: ResBlocks, each optionally followed by a SpatialTransformer, then an optional
    down- or upsampler. Up stages concatenate a skip connection before each ResBlock."""

    def __init__(self, res: list[ResBlock], attn: list[SpatialTransformer] | None, sampler: nn.Module | None):
        super().__init__()
        self.res = nn.ModuleList(res)
        self.attn = nn.ModuleList(attn) if attn else None
        self.sampler = sampler

    def _layer(self, i, h, temb, text, text_bias):
        h = self.res[i](h, temb)
        return self.attn[i](h, text, text_bias) if self.attn is not None else h

    def down(self, h, temb, text, text_bias) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i in range(len(self.res)):
            h = self._layer(i, h, temb, text, text_bias)
            skips.append(h)
        if self.sampler is not None:
            h = self.sampler(h)
            skips.append(h)
        return h, skips

    def up(self, h, skips: list[torch.Tensor], temb, text, text_bias, size=None) -> torch.Tensor:
        for i in range(len(self.res)):
            h = self._layer(i, torch.cat([h, grow(skips.pop(), h.shape[0])], dim=1), temb, text, text_bias)
        return self.sampler(h, size) if self.sampler is not None else h
