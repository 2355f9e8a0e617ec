"""int8 weight-only quantisation for CPU decoding.

`quantize_int8(model)` replaces every `nn.Linear` (LM head included) by a `QuantLinear` holding int8
weights with one scale per output channel (symmetric, absmax / 127). Activations, norms, attention and
the residual stream stay in the model's float dtype. Batch-1 decoding reads every weight once per
token, so it is memory-bound: int8 weights move 4x fewer bytes than fp32.

Inputs of up to `NATIVE_MAX_ROWS` rows on the CPU (decode steps) run in `lingvis.native`'s C kernels when
they built: weight-only multiplies fp32 activations by the int8 weights in fp32 (no bf16 rounding), W8A8
quantises each row on fbgemm's grid and multiplies in int32 (VNNI) with fbgemm's rescaling, so its results
equal fbgemm's to float rounding. Otherwise, on CPU the product runs in torch's int8 weight-pack kernel
(`aten._weight_int8pack_mm`, the kernel of torch's own weight-only int8 path) with bf16 activations and fp32
accumulation; the scales are rounded to bf16 *before* quantising so the kernel applies exactly the scales
the weights were quantised with.
Many-row inputs (prompt prefill) and shapes the kernel does not take (in_features not a multiple of 16:
torch 2.13's kernel crashes on K = 8, 24, 40; non-CPU tensors) use a dequantised fp32 matmul instead.

`activations="int8"` (W8A8, dynamic) also quantises the activations, one asymmetric 8-bit grid per row
computed at run time, and runs every product in fbgemm's int8 GEMM (torch's dynamic-quantisation kernel,
VNNI on x86): faster decode steps and prefill, at a small extra error. fbgemm's grid is per tensor, so a
many-row input is first mapped row by row onto [-1, 1] (z = (x - mid) / half; y = half * zW^T + mid * W.1
undoes it): every row gets the grid it would get alone, and its result does not depend on the rest of
its batch (up to rounding of the zero point).
"""
from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from . import native

NATIVE_MAX_ROWS = 4    # rows taken by the native kernels (each extra row redoes the int8 unpacking)
PACKED_MAX_ROWS = 32   # above this many rows a dequantised sgemm beats the row-by-row kernel (measured)
_HAS_PACKED = hasattr(torch.ops.aten, "_weight_int8pack_mm")
ACTIVATIONS = ("float", "int8")
INT8_MODES = {"weights": "float", "w8a8": "int8"}  # CLI / server names -> `quantize_int8(activations=...)`


@functools.cache
def _linear_dynamic():
    """fbgemm's dynamic int8 linear as a resolved overload (skips the op packet's per-call dispatch checks)."""
    return torch.ops.quantized.linear_dynamic.default


@functools.cache
def _int8pack_mm():
    return torch.ops.aten._weight_int8pack_mm.default


def fbgemm_available() -> bool:
    """True when this torch build has the x86/fbgemm dynamic int8 linear kernel."""
    return hasattr(torch.ops.quantized, "linear_dynamic") and \
        bool({"x86", "fbgemm"} & set(torch.backends.quantized.supported_engines))


def quantize_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) float -> (N, K) int8 and (N,) fp32 scales (bf16-representable), w ~ q * scale[:, None]."""
    if w.dim() != 2:
        raise ValueError(f"quantize_weight expects a 2-D weight, got shape {tuple(w.shape)}")
    w = w.detach().float()
    scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)  # (N,)
    scale = scale.to(torch.bfloat16).float()  # exactly what the bf16 kernel will multiply by
    q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)  # (N, K)
    return q, scale


class QuantLinear(nn.Module):
    """Inference-only linear layer with int8 weights and per-output-channel fp32 scales."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activations: str = "float"):
        super().__init__()
        if activations not in ACTIVATIONS:
            raise ValueError(f"activations must be one of {ACTIVATIONS}, got {activations!r}")
        if activations == "int8" and not fbgemm_available():
            raise RuntimeError("activations='int8' needs torch's fbgemm/x86 quantized engine, which this torch "
                               "build lacks; use activations='float' (weight-only)")
        self.in_features, self.out_features, self.activations = in_features, out_features, activations
        self._fbgemm = None  # packed int8 weight for activations="int8", built on first use
        self._native = None  # (weights key, native.LinearInt8 or None), built on first use
        self.register_buffer("weight_int8", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scales", torch.ones(out_features))
        self.register_buffer("scales_bf16", torch.ones(out_features, dtype=torch.bfloat16), persistent=False)
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @classmethod
    def from_linear(cls, lin: nn.Linear, activations: str = "float") -> "QuantLinear":
        m = cls(lin.in_features, lin.out_features, lin.bias is not None, activations)
        q, s = quantize_weight(lin.weight)
        m.weight_int8.copy_(q)
        m.scales.copy_(s)
        m.scales_bf16.copy_(s.to(torch.bfloat16))
        if lin.bias is not None:
            m.bias.copy_(lin.bias.detach().float())
        return m.to(lin.weight.device)

    def dequantized(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return (self.weight_int8 * self.scales[:, None]).to(dtype)  # (N, K); one fused promote-multiply

    def _packed_ok(self, x: torch.Tensor) -> bool:
        return (_HAS_PACKED and x.device.type == "cpu" and self.in_features % 16 == 0
                and x.numel() // self.in_features <= PACKED_MAX_ROWS)

    def _packed_fbgemm(self):
        """(fbgemm packed weight, (N,) row sums of the dequantised weight), built once."""
        if self._fbgemm is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch marks quantised-tensor creation as deprecated (still supported)
                qw = torch._make_per_channel_quantized_tensor(
                    self.weight_int8, self.scales.double(), torch.zeros(self.out_features, dtype=torch.long), 0)
                packed = torch.ops.quantized.linear_prepack(qw, None)
            self._fbgemm = (packed, self.dequantized().sum(dim=1))  # (N,)
        return self._fbgemm

    def native_kernel(self) -> native.LinearInt8 | None:
        """The native kernel over this layer's weights (None when the kernels are off or did not build),
        rebuilt when a weight, scale or bias is replaced or updated in place."""
        if self.weight_int8.device.type != "cpu" or not native.available():
            return None
        key = (self.activations, *((t.data_ptr(), t._version) for t in (self.weight_int8, self.scales, self.bias)
                                   if t is not None))
        if self._native is None or self._native[0] != key:
            self._native = (key, native.LinearInt8(self.weight_int8, self.scales, self.bias, self.activations))
        return self._native[1]

    def _forward_w8a8(self, x: torch.Tensor) -> torch.Tensor:
        packed, wsum = self._packed_fbgemm()
        x2 = x.reshape(-1, self.in_features).float()  # (M, K)
        if x2.shape[0] == 1:  # a decode step: fbgemm's per-tensor grid is this row's own grid
            y = _linear_dynamic()(x2, packed, False)  # (1, N)
        else:  # map every row's range (widened to hold 0, as fbgemm does) onto [-1, 1]: one grid fits all
            lo, hi = x2.aminmax(dim=1, keepdim=True)  # (M, 1) each
            lo, hi = lo.clamp_(max=0), hi.clamp_(min=0)
            mid, half = (hi + lo) * 0.5, ((hi - lo) * 0.5).clamp_(min=1e-12)  # (M, 1)
            z = (x2 - mid).div_(half)  # (M, K), each row spans exactly [-1, 1]
            y = _linear_dynamic()(z, packed, False)  # (M, N) ~ z W^T
            y = y.mul_(half).addcmul_(mid, wsum)  # half * zW^T + mid * W.1 = x W^T
        if self.bias is not None:
            y.add_(self.bias)
        return y.to(x.dtype).view(*x.shape[:-1], self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., K) -> (..., N)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"QuantLinear expects last dim {self.in_features}, got shape {tuple(x.shape)}")
        if (x.device.type == "cpu" and x.numel() <= NATIVE_MAX_ROWS * self.in_features
                and not torch.compiler.is_compiling()):  # Dynamo cannot trace the ctypes call
            kernel = self.native_kernel()
            if kernel is not None and kernel.accepts(x, NATIVE_MAX_ROWS):
                return kernel(x)
        if self.activations == "int8" and x.device.type == "cpu":
            return self._forward_w8a8(x)
        if not self._packed_ok(x):
            return F.linear(x, self.dequantized(x.dtype), None if self.bias is None else self.bias.to(x.dtype))
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)  # (M, K)
        y = _int8pack_mm()(x2, self.weight_int8, self.scales_bf16).to(x.dtype)  # (M, N)
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        mode = "int8 weights and activations" if self.activations == "int8" else "int8 weights"
        return f"in_features={self.in_features}, out_features={self.out_features}, {mode}, per-channel scales"


def quantize_int8(model: nn.Module, skip: tuple[str, ...] = (), activations: str = "float") -> nn.Module:
    """Swap every `nn.Linear` (except names containing a `skip` part) for a `QuantLinear`, in place.
    `activations="float"`: weight-only int8; `"int8"`: activations quantised too, per row at run time
    (W8A8 dynamic, fbgemm). Tied weights (GPT's wte/lm_head) are untied: the embedding stays float for
    lookups. Returns the model in eval mode; it is for inference (quantised layers have no trainable weights)."""
    from .lora import LoRALinear

    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("quantize_int8: the model has LoRA adapters; merge them first (lingvis.lora.merge_lora)")
    swaps = [(owner, name, child) for owner_name, owner in model.named_modules()
             for name, child in owner.named_children()
             if isinstance(child, nn.Linear) and not any(s in f"{owner_name}.{name}" for s in skip)]
    if not swaps:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layers to quantise")
    for owner, name, child in swaps:
        setattr(owner, name, QuantLinear.from_linear(child, activations))
    return model.eval()


def quantize_int8_mode(model: nn.Module, mode: str) -> nn.Module:
    """`quantize_int8` by its command-line name: "weights" (weight-only) or "w8a8" (W8A8 dynamic)."""
    if mode not in INT8_MODES:
        raise ValueError(f"int8 mode must be one of {sorted(INT8_MODES)}, got {mode!r}")
    return quantize_int8(model, activations=INT8_MODES[mode])


def weight_bytes(model: nn.Module) -> int:
    """Bytes of parameters and persistent buffers (what a decode step streams from memory, roughly)."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return params + sum(b.numel() * b.element_size() for n, b in model.named_buffers() if "scales_bf16" not in n)
