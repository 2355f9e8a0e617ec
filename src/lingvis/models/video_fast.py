"""Inference forward of the divided space-time video Transformer (TimeSformer) in a frame-major layout.

The shared blocks (nn/space_time.py) keep TimeSformer's token order (B, 1 + N*F, D): a class token, then the
F frames of patch 0, of patch 1, ... Each divided attention then regroups the tokens with copies: the spatial
sublayer transposes the patches to frames and concatenates the class token to every frame, transposes the
output back and concatenates the frame-mean class token; the temporal sublayer concatenates a zero row for
the class token. Without gradients the same weights run here on the layout (F, B, 1 + N, D): every frame
holds its own copy of the class token (all copies stay equal), so

  - the spatial attention is plain attention over the (F*B, 1 + N, D) rows, no copy in or out; the class
    token's output is the mean over the frames, written to every copy;
  - the temporal attention reads its queries, keys and values as strided views of the fused projection
    (N, H, F, hd) per clip, which the attention kernels take as they are;
  - `fc` after `proj` (two linear maps in a row) is one (D, D) map, folded once per weight version;
  - residual adds are in place, the MLP's GELU runs in the epilogue of its first product (`mlp_forward`), and the
    final norm runs on the class token only;
  - attention runs through `nn.fast_attention.attention`: lingvis' native fp32 kernel where it measures faster
    than SDPA on this machine (docs/video.md);
  - every linear map runs through `nn.packed_linear.linear`: oneDNN on a packed weight where it measures faster
    than MKL on this machine (AMD EPYC: 1.15-1.35x on the 1568 x 768 x {768, 2304, 3072} products), the patch
    embedding too (`tubelet_tokens`: the Conv3d as one GEMM on the pixels' tubelets, in the token layout).

The class-token copies cost F - 1 extra rows out of F * (1 + N) in the norms and linear maps (0.4% for
TimeSformer-B). The result equals the block-by-block forward up to float rounding.
"""
from __future__ import annotations

import torch
from torch import nn

from ..nn.attention import Attention
from ..nn.fast_attention import attention
from ..nn.packed_linear import linear, onednn_chosen, packed_available, packed_linears

# oneDNN's linear with the GELU in its epilogue (the kernel inductor's CPU freezing uses): the (rows, 4D)
# activation is written once instead of written by the product and rewritten by the GELU
_GELU_EPILOGUES = ("gelu", "gelu_tanh")


def tubelet_tokens(conv: nn.Conv3d, pixel_values: torch.Tensor) -> torch.Tensor:
    """The patch embedding `conv` (kernel = stride, no padding) of (B, F, C, H, W) clips as token rows (B, T, N, D),
    time-major patches (T = F / tubelet, N = (H / p) * (W / p)). Without gradients, on CPU fp32, one GEMM through
    `nn.packed_linear.linear` on the (B*T*N, C*kt*p*p) tubelets (one copy of the pixels) instead of the Conv3d:
    oneDNN's Conv3d ran VideoMAE-B's (16 x 224 x 224 -> 1568 x 768) at 44.1 ms, the copy + GEMM at 36.8 ms (1
    thread, thread CPU time). Otherwise the convolution itself."""
    B, Fr, C, H, W = pixel_values.shape
    kt, ph, pw = conv.kernel_size
    D = conv.out_channels
    if (torch.is_grad_enabled() or pixel_values.device.type != "cpu" or pixel_values.dtype != torch.float32
            or conv.weight.dtype != torch.float32 or tuple(conv.stride) != (kt, ph, pw) or conv.groups != 1
            or any(conv.padding) or Fr % kt or H % ph or W % pw):
        return conv(pixel_values.transpose(1, 2)).flatten(3).permute(0, 2, 3, 1)  # (B, D, T, g, g) -> (B, T, N, D)
    T, gh, gw = Fr // kt, H // ph, W // pw
    rows = pixel_values.reshape(B, T, kt, C, gh, ph, gw, pw)
    rows = rows.permute(0, 1, 4, 6, 3, 2, 5, 7)  # (B, T, gh, gw, C, kt, ph, pw) view
    rows = rows.reshape(B, T, gh * gw, C * kt * ph * pw)  # (B, T, N, C*kt*ph*pw): the one copy
    return linear(rows, conv.weight.view(D, -1), conv.bias, conv, "tubelet")  # (B, T, N, D)


def mlp_forward(mlp: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """`mlp(h)` (..., D) -> (..., D) without gradients; fc + GELU fused on CPU fp32 when oneDNN has the kernel."""
    if (not packed_available() or mlp.activation not in _GELU_EPILOGUES or getattr(mlp, "gated", False)
            or h.device.type != "cpu" or h.dtype != torch.float32):
        return mlp(h)
    a = linear(h, mlp.fc.weight, mlp.fc.bias, mlp.fc, epilogue=mlp.activation)  # (..., hidden)
    return linear(a, mlp.proj.weight, mlp.proj.bias, mlp.proj)  # (..., D)


def folded_temporal_out(attn: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(W, b) of `fc(proj(y))` as one linear map: W = W_fc W_proj, b = W_fc b_proj + b_fc; cached on the
    module and rebuilt when either weight changes (in place updates bump the tensor versions)."""
    params = [p for p in (attn.proj.weight, attn.proj.bias, attn.fc.weight, attn.fc.bias) if p is not None]
    key = tuple((p.data_ptr(), p._version) for p in params)
    cached = getattr(attn, "_folded_out", None)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    with torch.no_grad():
        w = attn.fc.weight @ attn.proj.weight  # (D, D)
        b = attn.proj.bias
        b = attn.fc.weight @ b if b is not None else None
        if attn.fc.bias is not None:
            b = attn.fc.bias.clone() if b is None else b + attn.fc.bias
    attn._folded_out = (key, w, b)
    return w, b


def _temporal(x: torch.Tensor, block: nn.Module) -> None:
    """x (F, B, 1 + N, D) += temporal attention of the patches over their frames (class token unchanged)."""
    Fr, B, _, D = x.shape
    attn = block.temporal_attn
    H, hd = attn.n_heads, attn.head_dim
    qkv = attn.qkv(block.ln_t(x))  # (F, B, 1 + N, 3D); the class-token rows are not read
    w, b = folded_temporal_out(attn)
    for i in range(B):
        t = qkv[:, i, 1:].unflatten(-1, (3, H, hd))  # (F, N, 3, H, hd) view
        q, k, v = (t[:, :, j].permute(1, 2, 0, 3) for j in range(3))  # (N, H, F, hd) strided views
        y = attention(q, k, v)  # (N, H, F, hd)
        y = linear(y.transpose(1, 2).reshape(-1, D), w, b, attn, "folded_out")  # (N*F, D): proj and fc in one map
        x[:, i, 1:].add_(y.view(-1, Fr, D).transpose(0, 1))


def _spatial(x: torch.Tensor, block: nn.Module) -> None:
    """x (F, B, 1 + N, D) += spatial attention within each frame; the class token gets its frame mean."""
    Fr, B, L, D = x.shape
    y = Attention.forward(block.attn, block.ln_1(x).view(Fr * B, L, D)).view(Fr, B, L, D)  # (F, B, 1 + N, D)
    y[:, :, 0] = y[:, :, 0].mean(dim=0)  # (B, D) to every frame's copy
    x.add_(y)


def divided_forward(model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """Final-normed class token (B, D) of a divided-attention `VideoTransformer` with a class token, no grad."""
    B = pixel_values.shape[0]
    p = tubelet_tokens(model.patch_embed, pixel_values)  # (B, F, N, D)
    Fr, N, D = p.shape[1], p.shape[2], p.shape[3]
    x = torch.empty(Fr, B, 1 + N, D, dtype=p.dtype, device=p.device)  # (F, B, 1 + N, D)
    # patches + space + time positions, written once into the frame-major layout
    torch.add(p.transpose(0, 1), model.pos_embed[:, 1:].to(p.dtype), out=x[:, :, 1:])
    x[:, :, 1:] += model.time_embed[0, :Fr, None, None].to(p.dtype)
    x[:, :, 0] = (model.cls_token[0, 0] + model.pos_embed[0, 0]).to(p.dtype)
    with packed_linears(model):  # the blocks' own nn.Linear calls (q/k/v, proj) through `linear` too
        for block in model.blocks:
            _temporal(x, block)
            _spatial(x, block)
            x.add_(mlp_forward(block.mlp, block.ln_2(x)))
    return model.norm(x[0, :, 0])  # (B, D): every frame's class-token copy is the same


def _head_major_attention(attn: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """Self-attention of h (L, D) -> (L, H*hd) before `proj`. q/k/v go to `scaled_dot_product_attention`
    head-major ((3H, L, hd) contiguous, no strided views), which it reads faster than views of a (L, 3D)
    output: from oneDNN's (L, 3D) product plus one copy where oneDNN measures faster (AMD EPYC: 52 vs 69 ms
    for the product at L = 1568, D = 768, one thread), else as one MKL batched product per head."""
    H, hd = attn.n_heads, attn.head_dim
    L, D = h.shape
    if onednn_chosen(h, attn.qkv.weight, attn.qkv.bias):
        y = linear(h, attn.qkv.weight, attn.qkv.bias, attn.qkv)  # (L, 3D)
        qkv = y.view(L, 3 * H, hd).transpose(0, 1).contiguous()  # (3H, L, hd)
    else:
        w = attn.qkv.weight.view(3 * H, hd, D).transpose(1, 2)  # (3H, D, hd) view
        hx = h.expand(3 * H, L, D)  # stride-0 batch: no copy
        qkv = torch.bmm(hx, w) if attn.qkv.bias is None else torch.baddbmm(attn.qkv.bias.view(3 * H, 1, hd), hx, w)
    q, k, v = qkv.view(3, 1, H, L, hd).unbind(0)  # (1, H, L, hd) each, contiguous
    return attention(q, k, v)[0].transpose(0, 1).reshape(L, H * hd)  # (L, H*hd)


def joint_forward(model: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """Pooled (B, D) of a joint-attention `VideoTransformer` (VideoMAE), no grad: head-major q/k/v and
    in-place residual adds; otherwise the blocks' own modules."""
    x, _ = model.embed(pixel_values)  # (B, L, D), a fresh tensor
    y = torch.empty_like(x)  # (B, L, H*hd): the video blocks' heads span the width
    for block in model.blocks:
        h = block.ln_1(x)  # (B, L, D)
        for i in range(x.shape[0]):
            y[i] = _head_major_attention(block.attn, h[i])
        x.add_(linear(y, block.attn.proj.weight, block.attn.proj.bias, block.attn.proj))
        x.add_(mlp_forward(block.mlp, block.ln_2(x)))
    if model.config.pool == "cls":
        return model.norm(x[:, 0])
    return model.pool(x)
