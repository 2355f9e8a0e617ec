"""fp32 GEMM kernels on this machine for the shapes lingvis' video, LLaVA and text-to-image models run:
MKL's sgemm (`F.linear`, what transformers / diffusers use), oneDNN's inner product on a weight packed once
(`_linear_pointwise` on `_reorder_linear_weight`, lingvis' oneDNN path) and oneDNN on the plain weight (reordered
inside every call). Calls interleaved (cycling through weight copies past the caches), best of N; with one
thread the per-thread CPU time (steady on a shared machine), with more the wall time. Prints GFLOP/s per
kernel, the speedups over MKL, and the choice nn/gemm_select.py makes for the shape (its own measurement).

    python -m benchmarks.gemm_kernels [--threads 1 2] [--shapes 1568x768x3072 ...]
"""
from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F

SHAPES = {  # rows x in x out
    "VideoMAE-B (1568 tokens)": ["1568x768x2304", "1568x768x768", "1568x768x3072", "1568x3072x768"],
    "TimeSformer-B (8 x 197 rows, 1568 temporal)": ["1576x768x2304", "1568x768x768", "1576x3072x768"],
    "LLaVA tower (197 rows, width 384)": ["197x384x1152", "197x384x1536", "197x1536x384"],
    "LLaVA prefill (220 rows, width 512)": ["220x512x1024", "220x512x2752", "220x1376x512"],
    "decode / small batches": ["1x768x3072", "2x768x3072", "4x768x3072", "8x768x3072", "16x768x3072",
                               "16x3072x768", "64x768x3072"],
    "t2i sd-small UNet (8 x 32^2 .. 8 x 8^2 pixels)": ["8192x64x64", "8192x64x512", "8192x256x64", "2048x128x128",
                                                       "2048x128x1024", "2048x512x128", "512x256x2048",
                                                       "512x1024x256", "616x256x256"],
}


def measure(m: int, k: int, n: int, budget: float = 1.0) -> dict[str, float]:
    """Best seconds per call of each kernel on (m, k) x (n, k)^T + bias, interleaved, cycling through weight
    copies adding up to 64 MB (a model's weights come from memory, not from cache)."""
    from lingvis.nn.gemm_select import PACK_HINT, STREAM_BYTES, interleaved_best

    copies = max(1, min(8, -(-STREAM_BYTES // (4 * k * n))))
    x, b = torch.randn(m, k), torch.randn(n)
    ws = [torch.randn(n, k) * k ** -0.5 for _ in range(copies)]
    packed = [torch.ops.mkldnn._reorder_linear_weight(w, PACK_HINT) for w in ws]
    fns = {"mkl": lambda i: F.linear(x, ws[i], b),
           "onednn_packed": lambda i: torch.ops.mkldnn._linear_pointwise(x, packed[i], b, "none", [], ""),
           "onednn_plain": lambda i: torch.ops.mkldnn._linear_pointwise(x, ws[i], b, "none", [], "")}
    want = fns["mkl"](0)
    for name, fn in fns.items():
        torch.testing.assert_close(fn(0), want, rtol=1e-4, atol=1e-4, msg=name)
    return interleaved_best(fns, copies, budget, rounds=1)


def main() -> None:
    from lingvis.nn.gemm_select import GemmChooser

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--shapes", nargs="+", help="MxKxN shapes (default: the models' table)")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per shape (about)")
    a = ap.parse_args()
    groups = {"given": a.shapes} if a.shapes else SHAPES
    print(f"load {os.getloadavg()[0]:.1f}; torch {torch.__version__}", flush=True)
    for threads in a.threads:
        torch.set_num_threads(threads)
        chooser = GemmChooser()
        print(f"\n{threads} thread(s), GFLOP/s ({'thread CPU time' if threads == 1 else 'wall'}, best of N)")
        print("| shape MxKxN | MKL | oneDNN packed | oneDNN plain | packed / MKL | plain / MKL | chosen |")
        print("|---|---|---|---|---|---|---|")
        for group, shapes in groups.items():
            print(f"| *{group}* | | | | | | |")
            for s in shapes:
                m, k, n = map(int, s.split("x"))
                best = measure(m, k, n, a.budget)
                g = {name: 2 * m * k * n / t / 1e9 for name, t in best.items()}
                print(f"| {s} | {g['mkl']:.0f} | {g['onednn_packed']:.0f} | {g['onednn_plain']:.0f} | "
                      f"{best['mkl'] / best['onednn_packed']:.2f} | {best['mkl'] / best['onednn_plain']:.2f} | "
                      f"{chooser.choose(m, k, n)} |", flush=True)


if __name__ == "__main__":
    main()
