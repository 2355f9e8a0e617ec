"""Which CPU fp32 kernel runs a linear map of a given shape: MKL's sgemm (`F.linear`) or oneDNN's inner product
on a packed weight (`torch.ops.mkldnn._linear_pointwise`), decided by measuring both on this machine.

The faster kernel depends on the CPU, not only on the shape: on an Intel Xeon MKL's sgemm was on par with or
ahead of oneDNN above ~256 rows, while on an AMD EPYC (Zen 4) MKL takes a slower code path and oneDNN's packed
kernel runs 1.1-1.6x faster on almost every shape from 2 to 8192 rows (docs/decoding.md has the tables). So
instead of row limits tuned on one machine, the first call of each (rows bucket, in features, out features,
threads) times the two kernels on random data of that shape (interleaved calls cycling through weight copies
larger than the caches; the median of three rounds' best times; per-thread CPU time with one thread, which a busy
machine disturbs little, wall time with several) and keeps the faster one for the rest of the process. oneDNN
must win by `MARGIN` to be picked (MKL is what `F.linear` runs, bit for bit). One row (a matrix-vector product)
is measured between MKL's gemv (which no measurement here has seen oneDNN beat) and lingvis' native fp32 GEMV
(native/gemv.c, the fused decode step's kernel; `GEMV_KERNEL`): on the AMD EPYC MKL's gemv streams a 32k x 512 LM
head at 10.7 GB/s with one thread, the native kernel at 23.0 (2026-12-07, thread CPU time, load 10). Without the
native kernels (no compiler, `LINGVIS_NATIVE=0`, no AVX-512 build) one row stays on MKL unmeasured.

Rows are bucketed by powers of two (1, 2, 3-4, 5-8, ...) and a bucket is measured at its top row count, halved
while the product exceeds `MEASURE_WORK` multiply-adds but never below `MIN_MEASURE_ROWS` (MKL's disadvantage grows
with the row count on the EPYC: 8192 x 64 x 64 1.21x for oneDNN, 1024 x 64 x 64 0.99x, so big buckets are not
measured small). One decision costs ~0.1-0.5 s once per shape, and a model has few distinct shapes.
`LINGVIS_GEMM=mkl` or `=onednn` forces a kernel (`auto`, the default, measures).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

KERNELS = ("mkl", "onednn")
GEMV_KERNEL = "native"  # one row: lingvis' fp32 GEMV (native/gemv.c) against MKL's gemv
MARGIN = 1.03  # oneDNN must be this much faster (MKL's time / oneDNN's) to be picked
MEASURE_WORK = 1 << 31  # multiply-adds above which a bucket is measured at fewer rows (~40 ms a call) ...
MIN_MEASURE_ROWS = 1024  # ... but not fewer than this
PACK_HINT = 16  # rows oneDNN's weight packing is tuned for; measured as good as or better than others for 2..8192
MEASURE_SECONDS = 0.1  # aim of each kernel's timed calls per measurement (ROUNDS x 2..64 calls)
ROUNDS = 3
STREAM_BYTES = 64 << 20  # weight copies cycled in a measurement (up to 8): more than the caches hold

Timer = Callable[[str, int, int, int], float]  # (kernel, rows, in_features, out_features) -> seconds per call


def rows_bucket(rows: int) -> int:
    """The bucket of a row count: the next power of two."""
    return 1 if rows <= 1 else 1 << (rows - 1).bit_length()


def measure_rows(bucket: int, k: int, n: int) -> int:
    """Rows a bucket of a (k, n) weight is measured at: the bucket, halved while over `MEASURE_WORK`."""
    rows = bucket
    while rows > MIN_MEASURE_ROWS and rows * k * n > MEASURE_WORK:
        rows //= 2
    return rows


def env_kernel(variable: str, kernels: tuple[str, ...]) -> str | None:
    """The kernel the environment variable forces (one of `kernels`), or None for `auto` / unset (measure)."""
    value = os.environ.get(variable, "auto").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in kernels:
        raise ValueError(f"{variable} must be one of auto, {', '.join(kernels)}; got {value!r}")
    return value


def forced_kernel() -> str | None:
    """The kernel `LINGVIS_GEMM` forces, or None for `auto` (measure)."""
    return env_kernel("LINGVIS_GEMM", KERNELS)


def gemv_available() -> bool:
    """Whether lingvis' native fp32 GEMV is built and on (a candidate for one-row products)."""
    from ..native.kernels import available

    return available()


def native_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x (M, K) contiguous @ w (N, K)^T + b -> (M, N) through the native fp32 GEMV (w, b contiguous fp32)."""
    from ..native.build import load

    y = torch.empty(x.shape[0], w.shape[0], dtype=torch.float32)  # (M, N)
    load().lv_linear_f32(x.data_ptr(), w.data_ptr(), None if b is None else b.data_ptr(), y.data_ptr(), x.shape[0],
                         w.shape[0], w.shape[1], torch.get_num_threads())
    return y


def measure_kernels(rows: int, k: int, n: int) -> dict[str, float]:
    """Best seconds per call of each kernel on a random (rows, k) x (n, k)^T + bias product, interleaved (one row:
    MKL against the native GEMV, more rows: MKL against oneDNN's packed kernel). The
    calls cycle through copies of the weight adding up to `STREAM_BYTES` (a model's weights do not stay in
    cache between uses), so few-row products are timed reading their weights from memory, as in a model. A
    weight over `STREAM_BYTES` is measured on its first `STREAM_BYTES` worth of output columns (a 32k x 4096 LM
    head would otherwise need two 0.5 GB temporaries)."""
    n = min(n, max(256, STREAM_BYTES // (4 * k)))  # a huge weight (an LM head) measured on its first columns
    copies = max(1, min(8, -(-STREAM_BYTES // (4 * k * n))))
    g = torch.Generator().manual_seed(0)  # a private generator: measuring leaves the global RNG stream alone
    x, b = torch.randn(rows, k, generator=g), torch.randn(n, generator=g)  # (rows, k), (n,)
    ws = [torch.randn(n, k, generator=g) for _ in range(copies)]  # (n, k) each
    with torch.no_grad():
        if rows <= 1:
            fns = {"mkl": lambda i: F.linear(x, ws[i], b), GEMV_KERNEL: lambda i: native_linear(x, ws[i], b)}
            return interleaved_best(fns, copies, MEASURE_SECONDS, ROUNDS)
        packed = [torch.ops.mkldnn._reorder_linear_weight(w, PACK_HINT) for w in ws]
        fns = {"mkl": lambda i: F.linear(x, ws[i], b),
               "onednn": lambda i: torch.ops.mkldnn._linear_pointwise(x, packed[i], b, "none", [], "")}
        return interleaved_best(fns, copies, MEASURE_SECONDS, ROUNDS)


def interleaved_best(fns: dict[str, Callable[[int], object]], copies: int, seconds: float,
                     rounds: int = ROUNDS) -> dict[str, float]:
    """Seconds per call of each `fns[name](i)` (i cycling over `copies`): calls interleaved, the median of
    `rounds` rounds' best times (one disturbed round does not decide), about `seconds` in all. Per-thread CPU
    time with one thread (a busy machine disturbs it little), wall time with several."""
    clock = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter
    for fn in fns.values():  # warm-up (first-call allocations, oneDNN primitive creation)
        fn(0)
    first = next(iter(fns.values()))
    t0 = clock()
    first(0)
    calls = max(2, min(64, int(seconds / rounds / max(clock() - t0, 1e-7))))
    times = {name: [] for name in fns}
    for _ in range(rounds):
        best = {name: float("inf") for name in fns}
        for i in range(calls):
            for name, fn in fns.items():
                t = clock()
                fn(i % copies)
                best[name] = min(best[name], clock() - t)
        for name in fns:
            times[name].append(best[name])
    return {name: sorted(ts)[rounds // 2] for name, ts in times.items()}


@dataclass
class GemmChooser:
    """Per-process cache of the measured kernel choice; `timer` replaces the measurement (tests), `gemv` whether
    the native GEMV is a candidate for one row (None: when it is built)."""
    timer: Timer | None = None
    margin: float = MARGIN
    gemv: bool | None = None
    decisions: dict[tuple[int, int, int, int], str] = field(default_factory=dict)
    timings: dict[tuple[int, int, int, int], dict[str, float]] = field(default_factory=dict)

    def choose(self, rows: int, k: int, n: int) -> str:
        """'mkl', 'onednn' or (one row) 'native' for a (rows, k) x (k, n) product at the current thread count."""
        forced = forced_kernel()
        if forced is not None:
            return forced
        if rows <= 1 and not (gemv_available() if self.gemv is None else self.gemv):
            return "mkl"  # a matrix-vector product: MKL's gemv (oneDNN packed 0.54-0.78x of it on the EPYC and a Xeon)
        key = (rows_bucket(rows), k, n, torch.get_num_threads())
        kernel = self.decisions.get(key)
        if kernel is None:
            kernel = self._decide(key)
        return kernel

    def _decide(self, key: tuple[int, int, int, int]) -> str:
        bucket, k, n, _ = key
        m = measure_rows(bucket, k, n)
        other = GEMV_KERNEL if bucket == 1 else "onednn"  # the candidate against MKL
        if self.timer is not None:
            times = {name: self.timer(name, m, k, n) for name in ("mkl", other)}
        else:
            times = measure_kernels(m, k, n)
        kernel = other if times["mkl"] > self.margin * times[other] else "mkl"
        self.timings[key] = times
        self.decisions[key] = kernel
        return kernel

    def table(self) -> list[dict]:
        """The decisions so far with their timings (for benchmarks and docs)."""
        rows = []
        for key, kernel in sorted(self.decisions.items()):
            t = self.timings.get(key, {})
            other = GEMV_KERNEL if key[0] == 1 else "onednn"
            rows.append({"rows_bucket": key[0], "k": key[1], "n": key[2], "threads": key[3], "kernel": kernel,
                         f"{other}_speedup": round(t["mkl"] / t[other], 3) if t else None})
        return rows


CHOOSER = GemmChooser()  # the process-wide cache


def choose_kernel(rows: int, k: int, n: int) -> str:
    """The process-wide choice for a (rows, k) x (k, n) fp32 product: 'mkl', 'onednn' or (one row) 'native'."""
    return CHOOSER.choose(rows, k, n)
