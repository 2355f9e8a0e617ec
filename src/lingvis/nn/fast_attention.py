"""One entry for inference attention: lingvis' native fp32 kernel (native/attention.c) where it measures faster on
this machine, torch's `scaled_dot_product_attention` otherwise.

`attention(q, k, v, causal=False, scale=None)` computes what `F.scaled_dot_product_attention(q, k, v,
is_causal=causal, scale=scale, enable_gqa=...)` does, without a mask or dropout: q (B, H, Lq, D), k and v
(B, Hkv, Lk, D). CPU fp32 calls without autograd that the kernel takes (`native.attention.supports`) go through
`AttentionChooser`: the first call of each (Lq bucket, Lk bucket, D, grouped or not, causal, threads) times both
kernels on the call's own tensors (the first batches / heads of them, cut to about `MEASURE_FLOP`, as laid out
by the caller: strided views cost SDPA and the native kernel differently) and keeps the faster one for the
process; the native kernel must win by `MARGIN`. Lengths are bucketed by powers of two.
`LINGVIS_ATTENTION=native` or `=sdpa` forces a kernel (`auto`, the default, measures); so does
`with forced("sdpa"):` for the calls inside it (the trainer's validation: a measured choice differs between
processes, and a resumed run must log the same validation losses as an uninterrupted one).
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..native.attention import native_attention, supports
from .gemm_select import env_kernel, interleaved_best, rows_bucket

KERNELS = ("sdpa", "native")
MARGIN = 1.03  # the native kernel must be this much faster (SDPA's time / native) to be picked
MEASURE_FLOP = 4e8  # work of one measured call (~5 ms); bigger calls are measured on their first heads
MEASURE_SECONDS = 0.15  # aim of both kernels' timed calls per measurement (ROUNDS x 2..64 calls each)
ROUNDS = 5  # median of 5 rounds' best: with 3, 4-5 ms calls (TimeSformer's time attention) flipped between runs

Key = tuple[int, int, int, bool, bool, int]  # (Lq bucket, Lk bucket, D, grouped, causal, threads)
Timer = Callable[[str, Key], float]  # (kernel, key) -> seconds per call
_FORCED: contextvars.ContextVar[str | None] = contextvars.ContextVar("lingvis_attention_kernel", default=None)


@contextlib.contextmanager
def forced(kernel: str) -> Iterator[None]:
    """Every `attention` call inside runs on `kernel` ('sdpa' or 'native', where the native kernel takes it)."""
    if kernel not in KERNELS:
        raise ValueError(f"forced(kernel) takes one of {', '.join(KERNELS)}; got {kernel!r}")
    token = _FORCED.set(kernel)
    try:
        yield
    finally:
        _FORCED.reset(token)


def forced_kernel() -> str | None:
    """The kernel `forced(...)` or `LINGVIS_ATTENTION` forces, or None for `auto` (measure)."""
    forced_here = _FORCED.get()
    return forced_here if forced_here is not None else env_kernel("LINGVIS_ATTENTION", KERNELS)


def _sdpa(q, k, v, causal: bool, scale: float | None) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale, enable_gqa=k.shape[1] != q.shape[1])


def _sample(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, threads: int = 1):
    """The first batches (or heads of one batch) of q/k/v, views, adding up to about `MEASURE_FLOP`, and at least
    `threads` key/value heads where the call has them: the native kernel splits its key transposes over (batch,
    kv head), so one head measured with two threads ran that part on one thread (VideoMAE-B's heads are
    1.5x `MEASURE_FLOP` each), which no whole call does."""
    B, H, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    per_head = 4 * Lq * Lk * D
    if per_head * H <= MEASURE_FLOP:
        nb = max(1, min(B, int(MEASURE_FLOP // (per_head * H))))
        return q[:nb], k[:nb], v[:nb]
    g = H // Hkv
    nkv = max(1, min(threads, Hkv), min(Hkv, int(MEASURE_FLOP // (per_head * g))))
    return q[:1, :nkv * g], k[:1, :nkv], v[:1, :nkv]


def measure(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> dict[str, float]:
    """Seconds per call of each kernel on (a sample of) these tensors, interleaved (`interleaved_best`)."""
    q, k, v = _sample(q, k, v, torch.get_num_threads())
    fns = {"sdpa": lambda i: _sdpa(q, k, v, causal, None), "native": lambda i: native_attention(q, k, v, None, causal)}
    with torch.no_grad():
        return interleaved_best(fns, 1, MEASURE_SECONDS, ROUNDS)


@dataclass
class AttentionChooser:
    """Per-process cache of the measured kernel choice; `timer` replaces the measurement (tests)."""
    timer: Timer | None = None
    margin: float = MARGIN
    decisions: dict[Key, str] = field(default_factory=dict)
    timings: dict[Key, dict[str, float]] = field(default_factory=dict)

    @staticmethod
    def key(q: torch.Tensor, k: torch.Tensor, causal: bool) -> Key:
        return (rows_bucket(q.shape[2]), rows_bucket(k.shape[2]), q.shape[3], k.shape[1] != q.shape[1], bool(causal),
                torch.get_num_threads())

    def choose(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False) -> str:
        """'native' or 'sdpa' for this call (the caller has checked that the native kernel takes it)."""
        forced = forced_kernel()
        if forced is not None:
            return forced
        key = self.key(q, k, causal)
        kernel = self.decisions.get(key)
        if kernel is None:
            times = ({name: self.timer(name, key) for name in KERNELS} if self.timer is not None
                     else measure(q, k, v, causal))
            kernel = "native" if times["sdpa"] > self.margin * times["native"] else "sdpa"
            self.timings[key], self.decisions[key] = times, kernel
        return kernel


CHOOSER = AttentionChooser()


def choose_kernel(q: torch.Tensor, k: torch.Tensor, causal: bool = False, v: torch.Tensor | None = None) -> str:
    """The kernel `attention` runs for these tensors: 'native' or 'sdpa'."""
    v = k if v is None else v
    if not supports(q, k, v):
        return "sdpa"
    return CHOOSER.choose(q, k, v, causal)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
              scale: float | None = None) -> torch.Tensor:
    """softmax(q k^T * scale [causal]) v: q (B, H, Lq, D), k/v (B, Hkv, Lk, D) -> (B, H, Lq, D), by the
    measured-faster kernel (see the module doc). With autograd, on other devices/dtypes: SDPA."""
    if choose_kernel(q, k, causal, v) == "native":  # (supports(q, k, v) held there)
        return native_attention(q, k, v, scale, causal, checked=True)
    return _sdpa(q, k, v, causal, scale)
