"""Position-wise feed-forward layers: GELU, tanh-GELU, quick-GELU, ReLU, ReLU², SwiGLU."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .packed_linear import linear, onednn_epilogue

QUICK_GELU = 1.702  # quick_gelu(x) = x * sigmoid(1.702 x)
ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "quick_gelu": lambda x: x * torch.sigmoid(QUICK_GELU * x),
    "relu": F.relu,
    "relu2": lambda x: F.relu(x).square(),
    "silu": F.silu,
}
GATED = {"swiglu": F.silu, "geglu": F.gelu}
# The same functions writing into their input: used where no gradient flows (inference), so the (B, T, H)
# activation is not allocated a second time (a fresh large buffer costs page faults on every call).
INPLACE = {
    "gelu": lambda x: torch._C._nn.gelu_(x),
    "gelu_tanh": lambda x: torch._C._nn.gelu_(x, approximate="tanh"),
    "quick_gelu": lambda x: x.mul_(x.mul(QUICK_GELU).sigmoid_()),  # one (B, T, H) temporary instead of three
    "relu": F.relu_,
    "silu": lambda x: F.silu(x, inplace=True),
}
# Gated activations written into the gate half of fc's output (a strided view): the product is then the one
# new (B, T, H) buffer.
GATED_INPLACE = {"swiglu": lambda g: F.silu(g, inplace=True), "geglu": lambda g: torch._C._nn.gelu_(g)}


class MLP(nn.Module):
    """`fc` expands to `hidden` (2*hidden for gated activations), `proj` projects back to `dim`."""

    def __init__(self, dim: int, hidden: int, activation: str = "gelu", bias: bool = True, dropout: float = 0.0):
        super().__init__()
        if activation not in ACTIVATIONS and activation not in GATED:
            raise ValueError(f"unknown activation {activation!r}; choose from {sorted([*ACTIVATIONS, *GATED])}")
        self.activation = activation
        self.gated = activation in GATED
        self.fc = nn.Linear(dim, hidden * (2 if self.gated else 1), bias=bias)
        self.proj = nn.Linear(hidden, dim, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, ctx=None) -> torch.Tensor:  # (B, T, C); ctx: unused (block protocol)
        if self.activation == "swiglu" and type(self.fc) is nn.Linear and onednn_epilogue(x, self.fc.weight):
            return self.dropout(self.proj(self._swiglu_split(x)))
        if (self.activation == "quick_gelu" and type(self.fc) is nn.Linear and type(self.proj) is nn.Linear
                and onednn_epilogue(x, self.fc.weight)):
            return self.dropout(self._quick_gelu_folded(x))
        h = self.fc(x)  # (B, T, H) or (B, T, 2H)
        overwrite = not (h.requires_grad and torch.is_grad_enabled())  # fc's fresh output, no gradient
        if self.gated:
            gate, up = h.chunk(2, dim=-1)  # (B, T, H) views
            h = (GATED_INPLACE if overwrite else GATED)[self.activation](gate) * up
        elif overwrite and self.activation in INPLACE:
            h = INPLACE[self.activation](h)
        else:
            h = ACTIVATIONS[self.activation](h)
        return self.dropout(self.proj(h))  # (B, T, C)

    def _swiglu_split(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, H)
        """SwiGLU in inference as two products, each on its half of `fc`'s weight: the gate half through oneDNN
        with the SiLU fused into the product (no separate SiLU pass over a strided (B, T, H) half), the other
        half with the product by the gate fused into it (oneDNN's binary post-op: no separate (B, T, H) pass)."""
        w, b = self.fc.weight, self.fc.bias  # (2H, C), (2H,) or None
        H = w.shape[0] // 2
        gate = linear(x, w[:H], None if b is None else b[:H], self.fc, "gate", epilogue="silu")  # (B, T, H)
        return linear(x, w[H:], None if b is None else b[H:], self.fc, "up", mul=gate)  # (B, T, H): up * gate

    def _quick_gelu_folded(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        """quick_gelu(y) = y sigmoid(1.702 y) = silu(1.702 y) / 1.702, so in inference `fc` runs on its weight and
        bias times 1.702 with oneDNN's SiLU fused into the product, and the 1 / 1.702 goes into `proj`'s packed
        weight: no activation pass over the (B, T, H) hidden (quick_gelu's were three: a product, a sigmoid and a
        product; CLIP towers, e.g. LLaVA's)."""
        b = self.fc.bias
        z = linear(x, self.fc.weight, None if b is None else b * QUICK_GELU, self.fc, "quick_gelu", epilogue="silu",
                   scale=QUICK_GELU)  # (B, T, H): 1.702 quick_gelu(fc(x))
        return linear(z, self.proj.weight, self.proj.bias, self.proj, "quick_gelu", scale=1.0 / QUICK_GELU)
