"""Faster small-batch CPU inference for `nn.Linear`: oneDNN with pre-packed weights.

A decode step multiplies a few rows (beams, batched prompts, server batches) by every weight matrix.
For 2..256 rows MKL's sgemm runs far below memory speed on large weights, while oneDNN's inner product on
a weight packed once runs 1.3-1.6x faster on the GPT-2 layer shapes (measured: `python -m
benchmarks.beam_decode`, `benchmarks.gpt_decode`). One row (MKL's gemv is faster), small products (rows x
weight elements under `MIN_WORK`, where oneDNN's per-call cost dominates), training and autograd stay on
the ordinary path.

`packed_linears(model)` is a context manager: inside it, every plain fp32 `nn.Linear` of the model takes
the packed path for CPU inputs of 2..256 rows (large enough products) under `torch.no_grad()` / inference
mode. Packed weights are cached per module (an extra copy of each weight it packs, dropped with the module;
`release_packed(model)` frees them sooner) and rebuilt when the weight changes. Results agree with `F.linear`
to float rounding (about 1e-6 relative), not bit for bit. Set `LINGVIS_PACKED_LINEAR=0` to turn the path off.
"""
from __future__ import annotations

import contextlib
import os
import types
import weakref
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

# One row: MKL's gemv is faster. Up to 256 rows (prefills of short prompts, LLaVA's image + prompt): oneDNN
# packed vs MKL on the GPT-2 / 1024x4096 layer shapes, idle Xeon 2026-12-07, 1 / 2 threads: 48 rows 1.28x / 1.39x,
# 96 rows 1.14x / 1.21x, 160 rows 1.04x / 1.08x, 320 rows 0.98x / 1.04x (MKL's sgemm efficient again).
MIN_ROWS, MAX_ROWS = 2, 256
MIN_WORK = 6 << 20  # rows x weight elements below this stay on MKL: oneDNN's ~30 us per call dominates
PACK_HINT = 16  # rows the packing is tuned for; any row count in range works
_PACKED: "weakref.WeakKeyDictionary[nn.Linear, tuple]" = weakref.WeakKeyDictionary()  # module -> (key, packed)


def packed_available() -> bool:
    """oneDNN's packed linear ops exist in this torch build, and the path is not switched off."""
    return (os.environ.get("LINGVIS_PACKED_LINEAR", "1") != "0" and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise") and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))


def _packed_weight(mod: nn.Linear) -> torch.Tensor:
    """The module's weight packed for oneDNN, repacked when the weight tensor or its contents change."""
    w = mod.weight
    key = (w.data_ptr(), w._version, tuple(w.shape))
    cached = _PACKED.get(mod)  # kept off the module: opaque oneDNN tensors cannot be deep-copied
    if cached is None or cached[0] != key:
        with torch.no_grad():
            cached = (key, torch.ops.mkldnn._reorder_linear_weight(w.detach(), PACK_HINT))
        _PACKED[mod] = cached
    return cached[1]


def _eligible(mod: nn.Linear, x: torch.Tensor) -> bool:
    rows = x.numel() // max(x.shape[-1], 1)
    return (MIN_ROWS <= rows <= MAX_ROWS and rows * mod.weight.numel() >= MIN_WORK
            and not torch.is_grad_enabled() and x.device.type == "cpu"
            and x.dtype == torch.float32 and mod.weight.dtype == torch.float32 and mod.weight.device.type == "cpu"
            and (mod.bias is None or mod.bias.dtype == torch.float32))


def _packed_forward(mod: nn.Linear, x: torch.Tensor) -> torch.Tensor:  # (..., K) -> (..., N)
    """`nn.Linear.forward` with the packed path; bound to the module (a deep copy rebinds to the copy)."""
    if not _eligible(mod, x):
        return F.linear(x, mod.weight, mod.bias)
    x2 = x.reshape(-1, mod.in_features)  # (M, K)
    y = torch.ops.mkldnn._linear_pointwise(x2, _packed_weight(mod), mod.bias, "none", [], "")  # (M, N)
    return y.view(*x.shape[:-1], mod.out_features)


def _linears(model) -> list[nn.Linear]:
    root = model if isinstance(model, nn.Module) else getattr(model, "model", None)  # e.g. a DecoderView
    if not isinstance(root, nn.Module):
        return []
    return [m for m in root.modules() if type(m) is nn.Linear]


@contextlib.contextmanager
def packed_linears(model) -> Iterator[None]:
    """Route the model's plain `nn.Linear` layers through oneDNN packed weights for small-batch CPU
    inference while the block runs (nested and concurrent uses are counted; the last exit restores)."""
    mods = _linears(model) if packed_available() else []
    for m in mods:
        depth = m.__dict__.get("_lingvis_packed_depth", 0)
        if depth == 0:
            m.forward = types.MethodType(_packed_forward, m)
        m.__dict__["_lingvis_packed_depth"] = depth + 1
    try:
        yield
    finally:
        for m in mods:
            depth = m.__dict__["_lingvis_packed_depth"] - 1
            m.__dict__["_lingvis_packed_depth"] = depth
            if depth == 0 and "forward" in m.__dict__:
                del m.forward


def release_packed(model) -> None:
    """Free the packed weight copies cached on the model's linear layers."""
    for m in _linears(model):
        _PACKED.pop(m, None)
