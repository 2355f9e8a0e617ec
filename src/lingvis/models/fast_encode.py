"""Fast CPU image encoding: dynamic int8 linear layers (int8 activations quantised at run time x int8
weights with one scale per output channel, int32 accumulation) for ViT / CNN / CLIP image towers.

Image encoding is compute-bound (every weight is used by B * tokens rows), so fp32 eager code runs at the
speed of the fp32 GEMMs whatever the framework; int8 GEMMs are several times faster on x86 CPUs. The
layers come from torch's dynamic quantisation (fbgemm/x86 kernels, which scale across threads); where a
torch build lacks it, `Int8DynamicLinear` (per-row activation scales, `torch._int_mm`) is used instead.
Embeddings stay within about 2e-4 cosine distance of fp32 (measured in benchmarks/vit_encode.py)."""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

HAS_INT_MM = hasattr(torch, "_int_mm")


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, K) float -> (M, K) int8 and (M, 1) scales, symmetric absmax per row."""
    scale = (x.abs().amax(dim=-1, keepdim=True) / 127.0).clamp(min=1e-12)  # (M, 1)
    return torch.round(x / scale).clamp_(-127, 127).to(torch.int8), scale


class Int8DynamicLinear(nn.Module):
    """Inference-only linear: int8 weights (per output channel) and activations quantised per row at run time."""

    def __init__(self, lin: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = lin.in_features, lin.out_features
        w = lin.weight.detach().float()
        q, s = quantize_rows(w)  # (N, K) int8, (N, 1)
        self.register_buffer("weight_int8", q)
        self.register_buffer("weight_scale", s.view(1, -1))  # (1, N)
        self.register_buffer("bias", None if lin.bias is None else lin.bias.detach().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., K) -> (..., N)
        x2 = x.reshape(-1, self.in_features).float()  # (M, K)
        xq, xs = quantize_rows(x2)
        y = torch._int_mm(xq, self.weight_int8.t()).float() * (xs * self.weight_scale)  # (M, N)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*x.shape[:-1], self.out_features).to(x.dtype)


def swap_int8_linears(model: nn.Module) -> nn.Module:
    """Swap every nn.Linear of `model` (in place) for an Int8DynamicLinear; returns the model."""
    if not HAS_INT_MM:
        raise RuntimeError("this torch build has no torch._int_mm; use the fp32 model")
    for name, child in model.named_children():
        if isinstance(child, nn.Linear):
            setattr(model, name, Int8DynamicLinear(child))
        else:
            swap_int8_linears(child)
    return model


def quantize_dynamic_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 for every nn.Linear of `model` (in place): torch's per-channel dynamic quantisation
    when available (faster, multi-threaded), else `swap_int8_linears`."""
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError:
        return swap_int8_linears(model)
    if not {"x86", "fbgemm"} & set(torch.backends.quantized.supported_engines):
        return swap_int8_linears(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks quantised tensor creation as deprecated (still supported)
        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, inplace=True)


def has_fast_bf16() -> bool:
    """True when this CPU multiplies bf16 in hardware (AMX tiles or AVX512-BF16), where bf16 GEMMs run
    several times faster than fp32; elsewhere bf16 is emulated and slower."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


class FastImageEncoder:
    """`encoder(pixels (B, 3, S, S)) -> (B, D)` fp32: a CLIP's normalised `encode_image`, or a ViT/CNN's
    pooled output, under inference mode, on a copy of the model in `precision`:
    "int8" (dynamic int8 linear layers), "bf16" (weights and activations in bfloat16: fast on CPUs with AMX
    or AVX512-BF16, see `has_fast_bf16`; embeddings within ~1e-4 cosine of fp32), or "fp32" (unchanged).
    `int8=False` (the older flag) means "fp32"."""

    PRECISIONS = ("int8", "bf16", "fp32")

    def __init__(self, model: nn.Module, int8: bool = True, precision: str | None = None):
        precision = precision or ("int8" if int8 else "fp32")
        if precision not in self.PRECISIONS:
            raise ValueError(f"precision must be one of {self.PRECISIONS}, got {precision!r}")
        self.precision = precision
        if precision == "int8":
            self.model = quantize_dynamic_int8(copy.deepcopy(model).eval())
        elif precision == "bf16":
            self.model = copy.deepcopy(model).eval().to(torch.bfloat16)
        else:
            self.model = model.eval()

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.precision == "bf16":
            pixels = pixels.to(torch.bfloat16)
        with torch.inference_mode():
            out = self.model.encode_image(pixels) if hasattr(self.model, "encode_image") else self.model(pixels)
        return out.float()
