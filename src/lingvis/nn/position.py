"""Position encodings: learned table, sinusoidal table, rotary (RoPE)."""
from __future__ import annotations

import math

import torch
from torch import nn


class LearnedPositions(nn.Module):
    """A trainable table of `max_len` position vectors."""

    def __init__(self, max_len: int, dim: int):
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.zeros(max_len, dim))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, C)
        return self.weight[position_ids]


def sinusoidal_table(max_len: int, dim: int, interleave: bool = False,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(max_len, dim) float32 table of "Attention Is All You Need". `interleave=False` puts all sines in the
    first half and all cosines in the second (fairseq/Marian layout); `True` alternates sin, cos per pair.
    `dtype` is the precision the angles are computed in (float64 as NumPy-built tables, e.g. VideoMAE)."""
    pos = torch.arange(max_len, dtype=dtype)[:, None]  # (L, 1)
    half = dim // 2
    inv = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=dtype) / half)  # (D/2,)
    if interleave:
        inv = 1.0 / torch.pow(torch.tensor(10000.0, dtype=dtype), torch.arange(0, dim, 2, dtype=dtype) / dim) \
            if dtype == torch.float64 else torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=dtype) / dim)
    ang = pos * inv  # (L, D/2)
    if interleave:
        table = torch.zeros(max_len, dim, dtype=dtype)
        table[:, 0::2], table[:, 1::2] = torch.sin(ang), torch.cos(ang)
        return table.float()
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1).float()  # (L, D)


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal positions (not saved in checkpoints)."""

    def __init__(self, max_len: int, dim: int, interleave: bool = False):
        super().__init__()
        self.max_len = max_len
        self.register_buffer("table", sinusoidal_table(max_len, dim, interleave), persistent=False)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, C)
        return self.table[position_ids]


ROPE_SCALING_FIELDS = {  # rope_scaling type -> (required fields, optional fields), as transformers reads them
    "default": ((), ()),
    "linear": (("factor",), ()),
    "dynamic": (("factor",), ()),
    "yarn": (("factor",), ("original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow",
                           "mscale", "mscale_all_dim", "truncate")),
    "llama3": (("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"), ()),
}


def check_rope_scaling(scaling: dict | None) -> dict | None:
    """Validate a `rope_scaling` dict (`{"rope_type": ..., fields}`; HF's legacy key `type` is accepted).
    Errors name the key and value."""
    if not scaling:
        return None
    if not isinstance(scaling, dict):
        raise ValueError(f"rope_scaling must be a mapping, got {scaling!r}")
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind not in ROPE_SCALING_FIELDS:
        raise ValueError(f"rope_scaling: unsupported rope_type {kind!r}; lingvis supports "
                         f"{', '.join(ROPE_SCALING_FIELDS)}")
    need, optional = ROPE_SCALING_FIELDS[kind]
    missing = [k for k in need if scaling.get(k) is None]
    if missing:
        raise ValueError(f"rope_scaling of type {kind!r} needs {', '.join(missing)}")
    unknown = sorted(set(scaling) - set(need) - set(optional) - {"rope_type", "type", "rope_theta"})
    if unknown:
        raise ValueError(f"rope_scaling of type {kind!r}: unsupported key(s) {unknown}")
    return {k: v for k, v in scaling.items() if k not in ("type", "rope_theta")} | {"rope_type": kind}


def rope_frequencies(head_dim: int, theta: float, scaling: dict | None = None, max_positions: int = 2048,
                     seq_len: int | None = None) -> tuple[torch.Tensor, float]:
    """(head_dim/2,) inverse frequencies and the cos/sin multiplier (YaRN's attention factor) for a rotary
    embedding with `rope_scaling` of type default, linear, dynamic (NTK, needs the current `seq_len`), yarn or
    llama3, computed as transformers computes them. `max_positions` is the model's context length."""
    d = head_dim
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))  # (D/2,)
    kind = (scaling or {}).get("rope_type", "default")
    if kind == "default":
        return inv, 1.0
    factor = scaling["factor"]
    if kind == "linear":
        return inv / factor, 1.0
    if kind == "dynamic":
        n = max(seq_len or max_positions, max_positions)
        base = theta * ((factor * n / max_positions) - (factor - 1)) ** (d / (d - 2))
        return 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d)), 1.0
    if kind == "llama3":
        old = scaling["original_max_position_embeddings"]
        lo_f, hi_f = scaling["low_freq_factor"], scaling["high_freq_factor"]
        wavelen = 2 * math.pi / inv
        out = torch.where(wavelen > old / lo_f, inv / factor, inv)
        smooth = (old / wavelen - lo_f) / (hi_f - lo_f)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = ~(wavelen < old / hi_f) * ~(wavelen > old / lo_f)
        return torch.where(medium, smoothed, out), 1.0
    # yarn
    old = scaling.get("original_max_position_embeddings") or max_positions
    attn = scaling.get("attention_factor")
    mscale, mscale_all = scaling.get("mscale"), scaling.get("mscale_all_dim")

    def get_mscale(s: float, m: float = 1.0) -> float:
        return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0

    if attn is None:
        attn = get_mscale(factor, mscale) / get_mscale(factor, mscale_all) if mscale and mscale_all \
            else get_mscale(factor)
    fast, slow = scaling.get("beta_fast") or 32, scaling.get("beta_slow") or 1

    def correction_dim(rot: float) -> float:
        return (d * math.log(old / (rot * 2 * math.pi))) / (2 * math.log(theta))

    low, high = correction_dim(fast), correction_dim(slow)
    if scaling.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, d - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(d // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)  # (D/2,)
    pos = theta ** (torch.arange(0, d, 2).float() / d)
    extrapolate = 1 - ramp
    return (1.0 / (factor * pos)) * (1 - extrapolate) + (1.0 / pos) * extrapolate, float(attn)


class Rotary(nn.Module):
    """Rotary position embedding (rotate-half convention) with transformers' `rope_scaling` types.
    `forward(position_ids (B, T))` returns (cos, sin), each (B, 1, T, D), computed in fp32 from the inverse
    frequencies (a product per element, so equal to transformers' values bit for bit). Dynamic NTK scaling
    recomputes its frequencies when a longer sequence arrives and resets below the original length."""

    def __init__(self, head_dim: int, max_len: int, theta: float = 10000.0, scaling: dict | None = None):
        super().__init__()
        self.head_dim, self.max_len, self.theta = head_dim, max_len, theta
        self.scaling = check_rope_scaling(scaling)
        inv, self.attention_factor = rope_frequencies(head_dim, theta, self.scaling, max_len)
        self.register_buffer("inv_freq", inv, persistent=False)  # (D/2,)
        self.register_buffer("original_inv_freq", inv.clone(), persistent=False)
        self.seen = max_len  # dynamic NTK: the longest sequence its frequencies were computed for

    def _dynamic_update(self, seq_len: int) -> None:
        if seq_len > self.seen:  # growth
            inv, _ = rope_frequencies(self.head_dim, self.theta, self.scaling, self.max_len, seq_len)
            self.inv_freq = inv.to(self.inv_freq.device)
            self.seen = seq_len
        if seq_len < self.max_len < self.seen:  # back within the original length
            self.inv_freq, self.seen = self.original_inv_freq, self.max_len

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # (B, T) -> two (B, 1, T, D) tensors broadcastable over heads
        if self.scaling and self.scaling["rope_type"] == "dynamic":
            self._dynamic_update(int(position_ids.max()) + 1)
        ang = position_ids[..., None].float() * self.inv_freq  # (B, T, D/2)
        emb = torch.cat([ang, ang], dim=-1)[:, None]  # (B, 1, T, D)
        if self.attention_factor != 1.0:
            return emb.cos() * self.attention_factor, emb.sin() * self.attention_factor
        return emb.cos(), emb.sin()


_NATIVE = []  # [native.rotary], imported on first use (the native package imports lingvis.nn)


def _native():
    if not _NATIVE:
        from ..native import rotary
        _NATIVE.append(rotary)
    return _NATIVE[0]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, T, D) queries or keys by their positions: x cos + (-x2, x1) sin for the halves x1, x2."""
    if x.shape[-1] % 2 or torch.is_grad_enabled() and (x.requires_grad or cos.requires_grad or sin.requires_grad):
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat([-x2, x1], dim=-1) * sin
    native = _native()
    if native.supports(x, cos, sin):  # fp32 CPU: one native pass over the strided rows
        return native.rotary(x, cos, sin)  # (B, H, T, D)
    # without autograd: the rotated halves accumulated into x cos in place (no negated, concatenated copy and
    # no second product buffer): 92.9 -> 66.0 us for (1, 8, 220, 64), 1 thread, thread CPU time
    h = x.shape[-1] // 2
    out = x * cos  # (B, H, T, D)
    out[..., :h].addcmul_(x[..., h:], sin[..., :h], value=-1)
    out[..., h:].addcmul_(x[..., :h], sin[..., h:])
    return out
