"""Which CPU fp32 kernel runs a linear map of a given shape: MKL's sgemm (`F.linear`) or oneDNN's inner product
on a packed weight (`torch.ops.mkldnn._linear_pointwise`), decided by measuring both on this machine.

The faster kernel depends on the CPU, not only on the shape: on an Intel Xeon MKL's sgemm was on par with or
ahead of oneDNN above ~256 rows, while on an AMD EPYC (Zen 4) MKL takes a slower code path and oneDNN's packed
kernel runs 1.1-1.6x faster on almost every shape from 2 to 8192 rows (docs/decoding.md has the tables). So
instead of row limits tuned on one machine, the first call of each (rows bucket, in features, out features,
threads) times the two kernels on random data of that shape (interleaved, best of several: per-thread CPU time
with one thread, which a busy machine disturbs little; wall time with several) and keeps the faster one for the
rest of the process. oneDNN must win by `MARGIN` to be picked (MKL is what `F.linear` runs, bit for bit).

Rows are bucketed by powers of two (1, 2, 3-4, 5-8, ..., 513-1024, and everything above, measured at
`MEASURE_ROWS_CAP` rows): one measurement costs at most ~0.1 s of a big shape's GEMM time and a model has few
distinct shapes. `LINGVIS_GEMM=mkl` or `=onednn` forces a kernel (`auto`, the default, measures).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

KERNELS = ("mkl", "onednn")
MARGIN = 1.03  # oneDNN must be this much faster (MKL's time / oneDNN's) to be picked
MEASURE_ROWS_CAP = 1024  # rows above this share one bucket, measured at this many rows
PACK_HINT = 16  # rows oneDNN's weight packing is tuned for; measured as good as or better than others for 2..8192
MEASURE_SECONDS = 0.05  # aim of each kernel's timed calls per measurement (3 to 50 calls)

Timer = Callable[[str, int, int, int], float]  # (kernel, rows, in_features, out_features) -> seconds per call


def rows_bucket(rows: int) -> int:
    """The bucket of a row count: the next power of two, all counts above `MEASURE_ROWS_CAP` in one."""
    if rows <= 1:
        return 1
    return min(1 << (rows - 1).bit_length(), 2 * MEASURE_ROWS_CAP)


def measure_rows(bucket: int) -> int:
    """Rows a bucket is measured at."""
    return min(bucket, MEASURE_ROWS_CAP)


def forced_kernel() -> str | None:
    """The kernel `LINGVIS_GEMM` forces, or None for `auto` (measure)."""
    value = os.environ.get("LINGVIS_GEMM", "auto").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in KERNELS:
        raise ValueError(f"LINGVIS_GEMM must be one of auto, {', '.join(KERNELS)}; got {value!r}")
    return value


def measure_kernels(rows: int, k: int, n: int) -> dict[str, float]:
    """Best seconds per call of each kernel on a random (rows, k) x (n, k)^T + bias product, interleaved."""
    x, w, b = torch.randn(rows, k), torch.randn(n, k), torch.randn(n)  # (rows, k), (n, k), (n,)
    with torch.no_grad():
        packed = torch.ops.mkldnn._reorder_linear_weight(w, PACK_HINT)
        fns = {"mkl": lambda: F.linear(x, w, b),
               "onednn": lambda: torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")}
        clock = time.thread_time if torch.get_num_threads() == 1 else time.perf_counter
        t0 = clock()
        for fn in fns.values():  # warm-up (first-call allocations, oneDNN primitive creation)
            fn()
        first = max((clock() - t0) / len(fns), 1e-7)
        calls = max(3, min(50, int(MEASURE_SECONDS / first)))
        best = {name: float("inf") for name in fns}
        for _ in range(calls):
            for name, fn in fns.items():
                t = clock()
                fn()
                best[name] = min(best[name], clock() - t)
    return best


@dataclass
class GemmChooser:
    """Per-process cache of the measured kernel choice; `timer` replaces the measurement (tests)."""
    timer: Timer | None = None
    margin: float = MARGIN
    decisions: dict[tuple[int, int, int, int], str] = field(default_factory=dict)
    timings: dict[tuple[int, int, int, int], dict[str, float]] = field(default_factory=dict)

    def choose(self, rows: int, k: int, n: int) -> str:
        """'mkl' or 'onednn' for a (rows, k) x (k, n) product at the current thread count."""
        forced = forced_kernel()
        if forced is not None:
            return forced
        key = (rows_bucket(rows), k, n, torch.get_num_threads())
        kernel = self.decisions.get(key)
        if kernel is None:
            kernel = self._decide(key)
        return kernel

    def _decide(self, key: tuple[int, int, int, int]) -> str:
        bucket, k, n, _ = key
        m = measure_rows(bucket)
        if self.timer is not None:
            times = {name: self.timer(name, m, k, n) for name in KERNELS}
        else:
            times = measure_kernels(m, k, n)
        kernel = "onednn" if times["mkl"] > self.margin * times["onednn"] else "mkl"
        self.timings[key] = times
        self.decisions[key] = kernel
        return kernel

    def table(self) -> list[dict]:
        """The decisions so far with their timings (for benchmarks and docs)."""
        rows = []
        for key, kernel in sorted(self.decisions.items()):
            t = self.timings.get(key, {})
            rows.append({"rows_bucket": key[0], "k": key[1], "n": key[2], "threads": key[3], "kernel": kernel,
                         "onednn_speedup": round(t["mkl"] / t["onednn"], 3) if t else None})
        return rows


CHOOSER = GemmChooser()  # the process-wide cache


def choose_kernel(rows: int, k: int, n: int) -> str:
    """The process-wide choice for a (rows, k) x (k, n) fp32 product: 'mkl' or 'onednn'."""
    return CHOOSER.choose(rows, k, n)
