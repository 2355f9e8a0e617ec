"""This machine's physical limits, measured in the benchmark's own run: memory bandwidth (a large copy, and the
weight reads of one matrix-vector product) and the fp32 GEMM rate of a given shape."""
from __future__ import annotations

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


def linear_gflops(rows: int, d_in: int, d_out: int, repeats: int = 5) -> float:
    """fp32 GFLOP/s of `F.linear` with `rows` inputs on a (d_out, d_in) weight."""
    x, w = torch.randn(rows, d_in), torch.randn(d_out, d_in)
    return 2 * rows * d_in * d_out / best_seconds(lambda: F.linear(x, w), repeats) / 1e9


def attention_gflops(batch_heads: int, tokens: int, head_dim: int, repeats: int = 5) -> float:
    """fp32 GFLOP/s of `scaled_dot_product_attention` (no mask) over `batch_heads` sequences of `tokens`
    (4 * tokens^2 * head_dim FLOPs each: the two matrix products)."""
    q = torch.randn(1, batch_heads, tokens, head_dim)
    seconds = best_seconds(lambda: F.scaled_dot_product_attention(q, q, q), repeats)
    return 4 * batch_heads * tokens ** 2 * head_dim / seconds / 1e9
