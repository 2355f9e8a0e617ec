"""fp32 attention kernels on this machine for the shapes lingvis' video, text-to-image and LLaVA models run:
torch's `scaled_dot_product_attention` (its CPU flash kernel, what transformers / diffusers use) vs lingvis'
native kernel (native/attention.c). Calls interleaved, the median of three rounds' best times; with one thread
the per-thread CPU time (steady on a shared machine), with more the wall time. Prints GFLOP/s (4 B H Lq Lk D
flops, half when causal) of each, the speedup, and the choice nn/fast_attention.py makes for the shape.

    python -m benchmarks.attention_kernels [--threads 1 2] [--budget 1.0]
"""
from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F

# name -> (B, H, Lq, Lk, D, causal, layout): layout "bhld" contiguous, "blhd" views of a (B, L, H, D) tensor
SHAPES = {
    "VideoMAE-B joint (12 x 1568, hd 64)": (1, 12, 1568, 1568, 64, False, "bhld"),
    "TimeSformer-B space (8 frames x 12 x 197)": (8, 12, 197, 197, 64, False, "blhd"),
    "TimeSformer-B time (196 x 12 x 8 frames)": (196, 12, 8, 8, 64, False, "blhd"),
    "sd-small level 0 self (4 x 8 x 1024, hd 8)": (4, 8, 1024, 1024, 8, False, "blhd"),
    "sd-small level 1 self (4 x 8 x 256, hd 16)": (4, 8, 256, 256, 16, False, "blhd"),
    "sd-small level 0 cross (4 x 8 x 1024 x 12, hd 8)": (4, 8, 1024, 12, 8, False, "blhd"),
    "shapes level 1 self (8 x 4 x 256, hd 16)": (8, 4, 256, 256, 16, False, "blhd"),
    "shapes level 2 self (8 x 4 x 64, hd 32)": (8, 4, 64, 64, 32, False, "blhd"),
    "CLIP ViT-B/16 tower (12 x 197, hd 64)": (1, 12, 197, 197, 64, False, "blhd"),
    "LLaVA tiny tower (6 x 197, hd 64)": (1, 6, 197, 197, 64, False, "blhd"),
    "LM prefill causal (8 x 220, hd 64)": (1, 8, 220, 220, 64, True, "blhd"),
    "DiT / BERT (12 x 256 hd 64, 12 x 128 hd 64)": (1, 12, 256, 256, 64, False, "blhd"),
    "head dim 80 (1 x 20 x 577)": (1, 20, 577, 577, 80, False, "blhd"),
}


def inputs(B: int, H: int, Lq: int, Lk: int, D: int, layout: str):
    """q (B, H, Lq, D), k and v (B, H, Lk, D): contiguous, or head views of (B, L, H, D) tensors."""
    g = torch.Generator().manual_seed(0)
    if layout == "bhld":
        return [torch.randn(B, H, n, D, generator=g) for n in (Lq, Lk, Lk)]
    return [torch.randn(B, n, H, D, generator=g).transpose(1, 2) for n in (Lq, Lk, Lk)]


def measure(B, H, Lq, Lk, D, causal, layout, budget: float) -> dict[str, float]:
    from lingvis.native.attention import native_attention
    from lingvis.nn.gemm_select import interleaved_best

    q, k, v = inputs(B, H, Lq, Lk, D, layout)
    fns = {"sdpa": lambda i: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
           "native": lambda i: native_attention(q, k, v, causal=causal)}
    torch.testing.assert_close(fns["native"](0), fns["sdpa"](0), rtol=1e-5, atol=1e-5)
    return interleaved_best(fns, 1, budget)


def main() -> None:
    from lingvis.native.kernels import available
    from lingvis.nn.fast_attention import CHOOSER, choose_kernel

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per shape (about)")
    ap.add_argument("--only", nargs="*", help="substrings of the shape names to run")
    a = ap.parse_args()
    if not available():
        raise SystemExit("the native kernels did not build (no C compiler?)")
    print(f"load {os.getloadavg()[0]:.1f}; torch {torch.__version__}", flush=True)
    with torch.no_grad():
        for threads in a.threads:
            torch.set_num_threads(threads)
            clock = "thread CPU time" if threads == 1 else "wall time"
            print(f"\n{threads} thread(s), {clock}, best of interleaved calls:")
            for name, (B, H, Lq, Lk, D, causal, layout) in SHAPES.items():
                if a.only and not any(s in name for s in a.only):
                    continue
                t = measure(B, H, Lq, Lk, D, causal, layout, a.budget)
                flop = 4 * B * H * Lq * Lk * D / (2 if causal else 1)
                q, k, v = inputs(B, H, Lq, Lk, D, layout)
                pick = choose_kernel(q, k, causal, v)
                own = CHOOSER.timings.get(CHOOSER.key(q, k, causal))  # the chooser's own measurement (None: forced)
                why = f", its sdpa / native {own['sdpa'] / own['native']:.2f}x" if own else ""
                print(f"  {name:<48} sdpa {flop / t['sdpa'] / 1e9:6.1f}  native {flop / t['native'] / 1e9:6.1f} "
                      f"GFLOP/s  native {t['sdpa'] / t['native']:.2f}x  ({t['native'] * 1e3:.2f} ms; picks {pick}"
                      f"{why})", flush=True)


if __name__ == "__main__":
    main()
