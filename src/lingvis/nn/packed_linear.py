"""Faster CPU fp32 inference for linear maps: oneDNN's inner product on weights packed once, where it measures
faster than MKL's sgemm on this machine (nn/gemm_select.py decides per shape).

`linear(x, w, b, owner=..., slot=...)` is `F.linear` with that choice: under `torch.no_grad()` / inference
mode, for CPU fp32 inputs, the product runs through oneDNN on a packed copy of `w` cached under (owner, slot)
when the shape's measured choice is oneDNN (or an epilogue is asked for: oneDNN fuses the GELU or SiLU into
the product), and a one-row product through lingvis' native GEMV where that measures faster than MKL's gemv;
otherwise, and always with autograd on or under `torch.compile` (inductor packs its own weights), it
is `F.linear` itself. Packed copies are rebuilt when the weight tensor or its contents change (tensor version)
and dropped with the owner (`release_packed` frees them sooner).

`packed_linears(model)` is a context manager: inside it, every plain fp32 `nn.Linear` of the model takes this
path. Results agree with `F.linear` to float rounding (about 1e-6 relative), not bit for bit.
`LINGVIS_PACKED_LINEAR=0` turns the path off (MKL everywhere); `LINGVIS_GEMM=mkl|onednn|auto` forces or measures
the kernel choice.
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

from .gemm_select import GEMV_KERNEL, PACK_HINT, choose_kernel, native_linear

# owner module -> {slot: (weakref to the weight's base, (address, shape, strides, version), packed weight)};
# kept off the module: opaque oneDNN tensors cannot be deep-copied
_PACKED: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()
# epilogue name -> (oneDNN post-op, its algorithm); oneDNN's "swish" is x * sigmoid(x), i.e. SiLU
_EPILOGUES = {"gelu": ("gelu", "none"), "gelu_tanh": ("gelu", "tanh"), "silu": ("swish", "")}
_HAS_OPS = (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))


def packed_available() -> bool:
    """oneDNN's packed linear ops exist in this torch build, and the path is not switched off."""
    return _HAS_OPS and os.environ.get("LINGVIS_PACKED_LINEAR", "1") != "0"


RESERVE = 0.25  # a new packed copy is made only while it leaves this share of the machine's memory available


def memory_room(nbytes: int, meminfo: str = "/proc/meminfo") -> bool:
    """Whether `nbytes` more can be held while MemAvailable stays above `RESERVE` of MemTotal (Linux; elsewhere
    True). Packed copies double a model's linear weights: a large model keeps MKL on its plain weights instead
    of running the machine out of memory."""
    try:
        with open(meminfo) as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.split()[1:2]}
        return info["MemAvailable"] - nbytes >= RESERVE * info["MemTotal"]
    except (OSError, KeyError, ValueError, IndexError):
        return True


def packed_weight(owner: object, slot: str, w: torch.Tensor, scale: float = 1.0) -> torch.Tensor | None:
    """`w` (times `scale`) packed for oneDNN, cached under (owner, slot), or None when a new copy would not fit in
    memory (`memory_room`: the caller then runs `F.linear`); repacked when another tensor comes in or its contents
    change. The tensor is held by weak reference to its base (a view made per call, e.g. a 1x1 convolution's
    weight reshaped, matches its parameter; a freed weight's address reused by a new one does not), with its
    offset, shape and version (inference tensors, e.g. weights derived under `torch.inference_mode()`, have none)."""
    base = w if w._base is None else w._base
    key = (w.data_ptr(), tuple(w.shape), w.stride(), -1 if w.is_inference() else w._version, scale)
    slots = _PACKED.get(owner)
    if slots is None:
        slots = _PACKED[owner] = {}
    cached = slots.get(slot)
    if cached is None or cached[0]() is not base or cached[1] != key:
        slots.pop(slot, None)  # a stale copy is freed before the room for a new one is judged
        if not memory_room(w.numel() * w.element_size()):
            return None
        with torch.no_grad():
            src = w.detach().contiguous() if scale == 1.0 else w.detach() * scale  # (N, K)
            cached = (weakref.ref(base), key, torch.ops.mkldnn._reorder_linear_weight(src, PACK_HINT))
        slots[slot] = cached
    return cached[2]


_F32 = torch.float32


def _eligible(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> bool:
    # every linear of every inference call asks this: the cheapest tests first (`is_cpu` makes no device object)
    return (x.dtype is _F32 and w.dtype is _F32 and x.is_cpu and w.is_cpu and not torch.is_grad_enabled()
            and w.dim() == 2 and x.shape[-1] == w.shape[1] and x.numel() > 0 and (b is None or b.dtype is _F32)
            and not torch.compiler.is_compiling() and packed_available())


def onednn_chosen(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> bool:
    """Whether `linear(x, w, b, ...)` (no epilogue) runs on oneDNN: for callers that lay out data per kernel."""
    return _eligible(x, w, b) and choose_kernel(x.numel() // x.shape[-1], w.shape[1], w.shape[0]) == "onednn"


def onednn_epilogue(x: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether `linear(x, w, ..., epilogue=...)` runs several rows through oneDNN with the activation fused (CPU
    fp32 inference with the packed path on; a one-row product takes the GEMV and a separate activation)."""
    return _eligible(x, w, None) and x.numel() > x.shape[-1]


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, owner: object, slot: str = "weight",
           epilogue: str = "none", scale: float = 1.0, mul: torch.Tensor | None = None) -> torch.Tensor:
    """(..., K) @ (scale w) (N, K)^T + b -> (..., N), then `epilogue` ('none', 'gelu', 'gelu_tanh', 'silu'),
    through the kernel measured faster for this shape; the packed copy of `scale w` is cached under (owner,
    slot). A fused epilogue or a scale runs on oneDNN whatever the shape's choice (the scale lives in the packed
    copy, so it costs nothing per call). `mul` (..., N), with no epilogue: the product times `mul` elementwise,
    fused into oneDNN's product (its binary post-op) for several rows (a gated MLP's up half times its gate)."""
    if epilogue != "none" and epilogue not in _EPILOGUES:
        raise ValueError(f"epilogue must be 'none' or one of {sorted(_EPILOGUES)}, got {epilogue!r}")
    if mul is not None:
        if epilogue != "none":
            raise ValueError("linear: `mul` takes no epilogue")
        if mul.shape != (*x.shape[:-1], w.shape[0]):
            raise ValueError(f"linear: `mul` must have shape {(*x.shape[:-1], w.shape[0])}, got {tuple(mul.shape)}")
        if (_eligible(x, w, b) and mul.dtype is _F32 and x.numel() > x.shape[-1] and mul.is_contiguous()
                and mul.is_cpu):
            packed = packed_weight(owner, slot, w, scale)
            if packed is not None:
                K, N = w.shape[1], w.shape[0]
                y = torch.ops.mkldnn._linear_pointwise.binary(x.reshape(-1, K).contiguous(), mul.view(-1, N),
                                                              packed, b, "mul")  # (M, N)
                return y.view(*x.shape[:-1], N)
        return linear(x, w, b, owner, slot, scale=scale) * mul
    if _eligible(x, w, b):
        K, N = w.shape[1], w.shape[0]
        x2 = x.reshape(-1, K)  # (M, K)
        kernel = choose_kernel(x2.shape[0], K, N)
        if kernel == GEMV_KERNEL and scale == 1.0 and w.is_contiguous() and (b is None or b.is_contiguous()):
            y = native_linear(x2.contiguous(), w.detach(), None if b is None else b.detach())  # (1, N)
            return _activate(y.view(*x.shape[:-1], N), epilogue)
        fused = epilogue != "none" or scale != 1.0
        packed = packed_weight(owner, slot, w, scale) if fused or kernel == "onednn" else None
        if packed is not None:
            attr, algorithm = ("none", "") if epilogue == "none" else _EPILOGUES[epilogue]
            y = torch.ops.mkldnn._linear_pointwise(x2.contiguous(), packed, b, attr, [], algorithm)  # (M, N)
            return y.view(*x.shape[:-1], N)
    return _activate(F.linear(x, w if scale == 1.0 else w * scale, b), epilogue)


def _activate(y: torch.Tensor, epilogue: str) -> torch.Tensor:
    if epilogue == "gelu":
        return F.gelu(y)
    if epilogue == "silu":
        return F.silu(y)
    return F.gelu(y, approximate="tanh") if epilogue == "gelu_tanh" else y


def _packed_forward(mod: nn.Linear, x: torch.Tensor) -> torch.Tensor:  # (..., K) -> (..., N)
    """`nn.Linear.forward` with the measured kernel; bound to the module (a deep copy rebinds to the copy)."""
    return linear(x, mod.weight, mod.bias, mod)


def _linears(model) -> list[nn.Linear]:
    root = model if isinstance(model, nn.Module) else getattr(model, "model", None)  # e.g. a DecoderView
    if not isinstance(root, nn.Module):
        return []
    return [m for m in root.modules() if type(m) is nn.Linear]


# root module -> [uses, the linears its outermost use routed]: a nested use on the same model skips the walk
_ACTIVE: "weakref.WeakKeyDictionary[nn.Module, list]" = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def packed_linears(model) -> Iterator[None]:
    """Route the model's plain `nn.Linear` layers through `linear` (the kernel measured faster per shape) for
    CPU inference while the block runs (nested and concurrent uses are counted; the last exit restores). A use
    inside another on the same model (generation inside a model's own `generate`) does not walk the modules
    again (~0.27 ms of Python a walk for LLaVA's benchmark model, 172 modules)."""
    root = model if isinstance(model, nn.Module) else getattr(model, "model", None)
    active = _ACTIVE.get(root) if isinstance(root, nn.Module) else None
    if active is not None:
        active[0] += 1
    else:
        mods = _linears(model) if packed_available() else []
        for m in mods:
            depth = m.__dict__.get("_lingvis_packed_depth", 0)
            if depth == 0:
                m.forward = types.MethodType(_packed_forward, m)
            m.__dict__["_lingvis_packed_depth"] = depth + 1
        active = [1, mods]
        if isinstance(root, nn.Module):
            _ACTIVE[root] = active
    try:
        yield
    finally:
        active[0] -= 1
        if active[0] == 0:
            if isinstance(root, nn.Module) and _ACTIVE.get(root) is active:
                del _ACTIVE[root]
            _unroute(active[1])


def _unroute(mods: list[nn.Linear]) -> None:
    for m in mods:
        depth = m.__dict__["_lingvis_packed_depth"] - 1
        m.__dict__["_lingvis_packed_depth"] = depth
        if depth == 0 and "forward" in m.__dict__:
            del m.forward


def release_packed(model) -> None:
    """Free the packed weight copies cached on the model's modules."""
    root = model if isinstance(model, nn.Module) else getattr(model, "model", None)
    if isinstance(root, nn.Module):
        for m in root.modules():
            _PACKED.pop(m, None)
