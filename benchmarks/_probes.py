"""This machine's physical limits, measured in the benchmark's own run: memory bandwidth (a large copy, and the
weight reads of one matrix-vector product) and the fp32 GEMM rate of a given shape."""
from __future__ import annotations

import contextlib
import os
import time

import torch
import torch.nn.functional as F


def best_seconds(fn, repeats: int = 5) -> float:
    """Fastest of `repeats` timed calls of fn (after one untimed warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def copy_bandwidth(mb: int = 512, repeats: int = 5) -> float:
    """GB/s of a large tensor copy, counting the bytes read and written."""
    src = torch.ones(mb * (1 << 20) // 4)
    dst = torch.empty_like(src)
    return 2 * src.numel() * 4 / best_seconds(lambda: dst.copy_(src), repeats) / 1e9


def gemv_bandwidth(rows: int = 65536, cols: int = 2048, repeats: int = 5) -> float:
    """Weight bytes read per second by one fp32 matrix-vector product (a 512 MB matrix by default), GB/s."""
    w, x = torch.randn(rows, cols), torch.randn(1, cols)
    return w.numel() * 4 / best_seconds(lambda: F.linear(x, w), repeats) / 1e9


def linear_gflops(rows: int, d_in: int, d_out: int, repeats: int = 5, kernel: str = "mkl") -> float:
    """fp32 GFLOP/s of `F.linear` (kernel 'mkl') or oneDNN's inner product on a packed weight ('onednn', the
    kernel nn/gemm_select.py may pick) with `rows` inputs on a (d_out, d_in) weight."""
    x, w = torch.randn(rows, d_in), torch.randn(d_out, d_in)
    return 2 * rows * d_in * d_out / best_seconds(_linear_fn(x, w, kernel), repeats) / 1e9


def _linear_fn(x: torch.Tensor, w: torch.Tensor, kernel: str):
    """x (M, K) times w (N, K)^T through MKL or oneDNN (packed weight), as a no-argument callable."""
    if kernel == "mkl":
        return lambda: F.linear(x, w)
    if kernel != "onednn":
        raise ValueError(f"kernel must be 'mkl' or 'onednn', got {kernel!r}")
    from lingvis.nn.gemm_select import PACK_HINT

    packed = torch.ops.mkldnn._reorder_linear_weight(w, PACK_HINT)
    return lambda: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")


def attention_gflops(batch_heads: int, tokens: int, head_dim: int, repeats: int = 5, kernel: str = "sdpa") -> float:
    """fp32 GFLOP/s of `scaled_dot_product_attention` (no mask; `kernel="auto"`: lingvis'
    `nn.fast_attention.attention`, the native kernel where it measures faster) over `batch_heads` sequences of
    `tokens` (4 * tokens^2 * head_dim FLOPs each: the two matrix products)."""
    from lingvis.nn.fast_attention import attention

    q = torch.randn(1, batch_heads, tokens, head_dim)
    fn = F.scaled_dot_product_attention if kernel == "sdpa" else attention
    with torch.no_grad():
        seconds = best_seconds(lambda: fn(q, q, q), repeats)
    return 4 * batch_heads * tokens ** 2 * head_dim / seconds / 1e9


@contextlib.contextmanager
def env_set(name: str, value: str):
    """The environment variable `name` set to `value` inside the block, restored after it."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name) if old is None else os.environ.__setitem__(name, old)


def record_matmuls(fn) -> list[tuple[str, tuple, tuple]]:
    """(op, shape of a, shape of b) of every matrix product `fn()` runs (mm, addmm, bmm, baddbmm), in order,
    from the profiler's recorded input shapes (works inside `torch.inference_mode`)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    calls = []
    for e in prof.events():
        op = e.name.removeprefix("aten::")
        if op in ("mm", "bmm"):
            calls.append((op, tuple(e.input_shapes[0]), tuple(e.input_shapes[1])))
        elif op in ("addmm", "baddbmm"):
            calls.append((op, tuple(e.input_shapes[1]), tuple(e.input_shapes[2])))
    return calls


def matmul_floor(calls: list[tuple[str, tuple, tuple]], repeats: int = 5, onednn: bool = False) -> dict:
    """Seconds the recorded matrix products take when run alone, each shape timed on its own (fresh weights of
    that shape, the same count of calls): the fastest a forward doing those products can be with these kernels,
    every other op free. With `onednn` each 2-D product takes the faster of MKL and oneDNN's packed kernel (the
    choice nn/gemm_select.py makes). Returns {"floor_s", "GFLOP", "shapes"}."""
    from collections import Counter

    counts = Counter((op, a, b) for op, a, b in calls)
    total, flop = 0.0, 0.0
    for (op, a, b), n in counts.items():
        x, w = torch.randn(*a), torch.randn(*b)
        mm = torch.bmm if op in ("bmm", "baddbmm") else torch.mm
        seconds = best_seconds(lambda: mm(x, w), repeats)  # noqa: B023
        if onednn and len(a) == 2:
            seconds = min(seconds, best_seconds(_linear_fn(x, w.t().contiguous(), "onednn"), repeats))
        total += n * seconds
        batch = a[0] if len(a) == 3 else 1
        flop += n * 2 * batch * a[-2] * a[-1] * b[-1]
    return {"floor_s": total, "GFLOP": flop / 1e9, "shapes": len(counts)}
