"""int8 weight-only quantisation for CPU decoding.

`quantize_int8(model)` replaces every `nn.Linear` (LM head included) by a `QuantLinear` holding int8
weights with one scale per output channel (symmetric, absmax / 127). Activations, norms, attention and
the residual stream stay in the model's float dtype. Batch-1 decoding reads every weight once per
token, so it is memory-bound: int8 weights move 4x fewer bytes than fp32.

On CPU the product runs in torch's int8 weight-pack kernel (`aten._weight_int8pack_mm`, the kernel of
torch's own weight-only int8 path) with bf16 activations and fp32 accumulation; the scales are rounded to
bf16 *before* quantising so the kernel applies exactly the scales the weights were quantised with.
Many-row inputs (prompt prefill) and shapes the kernel does not take (in_features not a multiple of 8,
non-CPU tensors) use a dequantised fp32 matmul instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PACKED_MAX_ROWS = 32   # above this many rows a dequantised sgemm beats the row-by-row kernel (measured)
_HAS_PACKED = hasattr(torch.ops.aten, "_weight_int8pack_mm")


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

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight_int8", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scales", torch.ones(out_features))
        self.register_buffer("scales_bf16", torch.ones(out_features, dtype=torch.bfloat16), persistent=False)
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @classmethod
    def from_linear(cls, lin: nn.Linear) -> "QuantLinear":
        m = cls(lin.in_features, lin.out_features, lin.bias is not None)
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
        return (_HAS_PACKED and x.device.type == "cpu" and self.in_features % 8 == 0
                and x.numel() // self.in_features <= PACKED_MAX_ROWS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., K) -> (..., N)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"QuantLinear expects last dim {self.in_features}, got shape {tuple(x.shape)}")
        if not self._packed_ok(x):
            return F.linear(x, self.dequantized(x.dtype), None if self.bias is None else self.bias.to(x.dtype))
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)  # (M, K)
        y = torch.ops.aten._weight_int8pack_mm(x2, self.weight_int8, self.scales_bf16).to(x.dtype)  # (M, N)
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8, per-channel scales"


def quantize_int8(model: nn.Module, skip: tuple[str, ...] = ()) -> nn.Module:
    """Swap every `nn.Linear` (except names containing a `skip` part) for a `QuantLinear`, in place.
    Tied weights (GPT's wte/lm_head) are untied: the embedding stays float for lookups. Returns the
    model in eval mode; it is for inference (quantised layers have no trainable weights)."""
    from .lora import LoRALinear

    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("quantize_int8: the model has LoRA adapters; merge them first (lingvis.lora.merge_lora)")
    swaps = [(owner, name, child) for owner_name, owner in model.named_modules()
             for name, child in owner.named_children()
             if isinstance(child, nn.Linear) and not any(s in f"{owner_name}.{name}" for s in skip)]
    if not swaps:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layers to quantise")
    for owner, name, child in swaps:
        setattr(owner, name, QuantLinear.from_linear(child))
    return model.eval()


def weight_bytes(model: nn.Module) -> int:
    """Bytes of parameters and persistent buffers (what a decode step streams from memory, roughly)."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return params + sum(b.numel() * b.element_size() for n, b in model.named_buffers() if "scales_bf16" not in n)
