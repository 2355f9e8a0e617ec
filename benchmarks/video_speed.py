"""Video Transformer forward speed: lingvis `VideoTransformer` vs transformers on the same random weights
(saved by transformers, loaded by `lingvis.load`) and the same input, under `torch.inference_mode()`, logits
compared first. VideoMAE-Base shape (16 frames of 224px, 2x16x16 tubelets: 1568 tokens, joint attention) and
TimeSformer-Base (8 frames of 224px, 16px patches, divided space-time attention), batch 1, 400 classes.
Wall and process CPU time (interleaved calls, median); on a shared machine the CPU-time ratio is steadier.
`lingvis` is the model's inference forward (models/video_fast.py); `blockwise` is the same model through the
shared blocks one by one (the training forward), and `mkl` the inference forward with every linear on MKL
(`LINGVIS_GEMM=mkl`, no per-shape oneDNN choice), and `sdpa` the inference forward with torch's SDPA for every
attention (`LINGVIS_ATTENTION=sdpa`, no native kernel), timed in the same run for the before/after.

The physical limit, measured in the same run: the forward's matrix-product FLOPs (counted with torch's
FlopCounterMode) at this machine's fp32 `F.linear` rate for the model's MLP shape, plus its attention FLOPs at
the attention rate of its attention shape (the faster of SDPA and lingvis' native kernel), give the fastest
fp32 forward these kernels allow (every other op free); the GEMM rate is the faster of MKL and oneDNN's packed
kernel (both printed, `floor_mkl_s` with MKL's); `largest_ratio_at_peak` is transformers' time over that floor.

    python -m benchmarks.video_speed [--repeats 3] [--threads 2] [--only videomae|timesformer]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile

import torch

from ._probes import attention_gflops, env_set, linear_gflops
from ._timing import timed


def build(kind: str, tmp: str):
    import transformers

    import lingvis

    torch.manual_seed(0)
    if kind == "videomae":
        cfg = transformers.VideoMAEConfig(num_labels=400)  # Base: 768 wide, 12 layers, 16 frames, 224px, tubelet 2
        ref = transformers.VideoMAEForVideoClassification(cfg).eval()
    else:
        cfg = transformers.TimesformerConfig(num_labels=400)  # Base: 8 frames, 224px, divided attention
        ref = transformers.TimesformerForVideoClassification(cfg).eval()
    ref.save_pretrained(tmp, safe_serialization=True)
    return lingvis.load(tmp).eval(), ref, cfg.num_frames


def attention_shapes(c, batch: int) -> list[tuple[int, int, int]]:
    """(sequences, tokens, head_dim) of every attention call of one forward (all layers)."""
    hd, N, T, cls = c.dim // c.heads, c.grid ** 2, c.time_steps, int(c.cls_token)
    if c.attention == "joint":
        return [(batch * c.heads, N * T + cls, hd)] * c.depth
    return [(batch * c.heads * N, T, hd), (batch * c.heads * T, N + cls, hd)] * c.depth  # time, then space


def _linear_pointwise_flop(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of oneDNN's fused linear (the MLP's fc + GELU of lingvis' inference forward)."""
    rows = 1
    for n in x_shape[:-1]:
        rows *= n
    return 2 * rows * x_shape[-1] * w_shape[0]


def matmul_flops(fn) -> int:
    """FLOPs of the matrix products (linears, convolutions, fused linears, batched q/k/v products) one call of fn
    runs, not attention (lingvis runs attention in `scaled_dot_product_attention` only)."""
    from torch.utils.flop_counter import FlopCounterMode

    custom = {}
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        custom[torch.ops.mkldnn._linear_pointwise] = _linear_pointwise_flop  # keyed by the op packet
    counter = FlopCounterMode(display=False, custom_mapping=custom)
    with counter, torch.inference_mode():
        fn()
    counts = counter.get_flop_counts()["Global"]
    return sum(n for op, n in counts.items() if "attention" not in str(op))


def roofline(ours, x: torch.Tensor) -> dict:
    """FLOPs of one forward and the fastest fp32 time this machine's GEMM and attention kernels allow."""
    c = ours.config
    matmul = matmul_flops(lambda: ours(x))  # linears and the patch embedding (the q/k/v products included)
    shapes = attention_shapes(c, x.shape[0])
    rates = {s: max(attention_gflops(*s), attention_gflops(*s, kernel="auto")) for s in set(shapes)}
    attn = sum(4 * n * t * t * d for n, t, d in shapes)
    rows = x.shape[0] * (c.grid ** 2 * c.time_steps + int(c.cls_token))
    gemm = linear_gflops(rows, c.dim, c.mlp_hidden)
    onednn = linear_gflops(rows, c.dim, c.mlp_hidden, kernel="onednn")
    attn_s = sum(4 * n * t * t * d / rates[(n, t, d)] / 1e9 for n, t, d in shapes)
    return {"GFLOP": round((matmul + attn) / 1e9, 1), "gemm_peak_GFLOPs": round(gemm, 1),
            "gemm_peak_onednn_GFLOPs": round(onednn, 1),
            "attention_GFLOPs": {f"{n}x{t}x{d}": round(r, 1) for (n, t, d), r in rates.items()},
            "floor_mkl_s": round(matmul / gemm / 1e9 + attn_s, 3),
            "floor_s": round(matmul / max(gemm, onednn) / 1e9 + attn_s, 3)}


def bench(kind: str, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        ours, ref, frames = build(kind, tmp)
        x = torch.randn(1, frames, 3, 224, 224, generator=torch.Generator().manual_seed(1))

        def run_ref():
            with torch.inference_mode():
                return ref(pixel_values=x).logits

        def run_ours():
            with torch.inference_mode():
                return ours(x)

        def run_blockwise():  # the shared blocks one by one (the training forward), for the before/after
            with torch.inference_mode():
                return ours.head(ours.pool(ours.forward_features(x)))

        def run_mkl():  # the fast forward with every linear on MKL (LINGVIS_GEMM=mkl), for the kernel choice's gain
            with env_set("LINGVIS_GEMM", "mkl"), torch.inference_mode():
                return ours(x)

        def run_sdpa():  # the fast forward with torch's SDPA for attention (LINGVIS_ATTENTION=sdpa), native's gain
            with env_set("LINGVIS_ATTENTION", "sdpa"), torch.inference_mode():
                return ours(x)

        diff = float((run_ours() - run_ref()).abs().max())
        wall, cpu = timed({"lingvis": run_ours, "lingvis_sdpa": run_sdpa, "lingvis_mkl": run_mkl,
                           "lingvis_blockwise": run_blockwise, "transformers": run_ref}, repeats)
        limit = roofline(ours, x)
    flop = limit["GFLOP"]
    return {"benchmark": f"{kind} base forward, batch 1, {frames} frames of 224px",
            "lingvis_s": round(wall["lingvis"], 3), "transformers_s": round(wall["transformers"], 3),
            "ratio_wall": round(wall["transformers"] / wall["lingvis"], 3),
            "lingvis_cpu_s": round(cpu["lingvis"], 3), "transformers_cpu_s": round(cpu["transformers"], 3),
            "ratio_cpu": round(cpu["transformers"] / cpu["lingvis"], 3), "logits_max_abs_diff": diff,
            "blockwise_s": round(wall["lingvis_blockwise"], 3), "blockwise_cpu_s": round(cpu["lingvis_blockwise"], 3),
            "ratio_wall_blockwise": round(wall["transformers"] / wall["lingvis_blockwise"], 3),
            "mkl_s": round(wall["lingvis_mkl"], 3), "mkl_cpu_s": round(cpu["lingvis_mkl"], 3),
            "ratio_cpu_mkl": round(cpu["transformers"] / cpu["lingvis_mkl"], 3),
            "gemm_choice_gain_cpu": round(cpu["lingvis_mkl"] / cpu["lingvis"], 3),
            "sdpa_cpu_s": round(cpu["lingvis_sdpa"], 3),
            "native_attention_gain_cpu": round(cpu["lingvis_sdpa"] / cpu["lingvis"], 3),
            "lingvis_GFLOPs": round(flop / wall["lingvis"], 1),
            "transformers_GFLOPs": round(flop / wall["transformers"], 1),
            **limit, "largest_ratio_at_peak": round(wall["transformers"] / limit["floor_s"], 3),
            "threads": torch.get_num_threads(), "load_avg": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per side (median)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--only", choices=["videomae", "timesformer"], help="one model only")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for kind in [a.only] if a.only else ["videomae", "timesformer"]:
        print(json.dumps(bench(kind, a.repeats)), flush=True)


if __name__ == "__main__":
    main()
