"""Image chat speed, lingvis vs transformers' `LlavaForConditionalGeneration`, on the same small LLaVA (random
weights built by transformers, loaded by lingvis through the production converter): CLIP ViT-B/16-style
tower at 224px (196 patch tokens, 6 layers of width 384 here), mlp2x_gelu projector, a Llama decoder (8
layers, width 512, GQA 8/4 heads, 32k vocabulary); fp32, KV cache on both sides, greedy.

- time to first token: one image + a 24-token prompt -> the first generated token (tower, projector,
  prefill of 220 positions, one token picked);
- decode tokens/s at batch 1 and batch 8 (one image per row): (generate N tokens - generate 1 token) / (N - 1)
  per row, so the rate counts only decode steps.

The generated tokens are checked identical on both sides. Ratios are lingvis / transformers (higher is better
for both: TTFT is reported as first tokens per second); `cpu_ratio` compares the process CPU time of the same
calls (transformers / lingvis), which a busy shared machine disturbs much less than the wall time.

The limit, measured in the same run: every matrix product lingvis' time-to-first-token call makes (recorded
with the profiler), each shape timed alone with this machine's kernels, gives the fastest TTFT those
products allow with everything else free (`floor_ms`); `largest_ratio_at_floor` is transformers' TTFT over it.
For decoding, the weight bytes one decode step reads (the language model's matrices) over this machine's
matrix-vector bandwidth (`_probes.gemv_bandwidth`) give the fastest step (`floor_step_ms`) and the largest
decode ratio over transformers (a batch-8 step reads the weights once for 8 rows, so its floor is lower still).

The same run also times lingvis with this round's fast paths switched off (`before`: `LINGVIS_FUSED_STEP=0`,
the decode steps through `Llava.forward`; `LINGVIS_LAST_PREFILL=0`, the prefill's last block on every position),
interleaved with the two others, and prints `before_ms` / `gain` (before / now) beside each row; likewise `mkl`
(every linear on MKL, `LINGVIS_GEMM=mkl`, instead of the per-shape measured MKL / oneDNN choice) as `mkl_ms` /
`gemm_choice_gain_cpu`, and for the first token `sdpa` (torch's SDPA for every attention,
`LINGVIS_ATTENTION=sdpa`, instead of the native kernel where it measures faster) as `sdpa_ms` /
`native_attention_gain_cpu` (`--no-ab` skips all three).

    python -m benchmarks.llava_speed [--quick] [--threads N] [--no-ab]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from ._probes import env_set, gemv_bandwidth, matmul_floor, record_matmuls
from ._timing import print_rows, row

PROMPT = 24
VISION = dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=6, num_attention_heads=6, image_size=224,
              patch_size=16, hidden_act="quick_gelu", projection_dim=256)
TEXT = dict(vocab_size=32064, hidden_size=512, intermediate_size=1376, num_hidden_layers=8, num_attention_heads=8,
            num_key_value_heads=4, max_position_embeddings=1024, rms_norm_eps=1e-5, tie_word_embeddings=False)
IMAGE_ID = 32000


def build_pair(tmp: str):
    import transformers

    import lingvis

    torch.manual_seed(0)
    cfg = transformers.LlavaConfig(vision_config=transformers.CLIPVisionConfig(**VISION),
                                   text_config=transformers.LlamaConfig(**TEXT), image_token_index=IMAGE_ID)
    ref = transformers.LlavaForConditionalGeneration(cfg).eval()
    ref.generation_config.eos_token_id = None
    ref.generation_config.pad_token_id = 0
    ref.save_pretrained(tmp)
    ours = lingvis.load(tmp)
    return ours, ref


def inputs(ours, batch: int):
    g = torch.Generator().manual_seed(batch)
    n = ours.tokens_per_image
    text = torch.randint(3, IMAGE_ID, (batch, PROMPT), generator=g)
    ids = torch.cat([text[:, :4], torch.full((batch, n), IMAGE_ID), text[:, 4:]], dim=1)  # (B, 4 + n + 20)
    pixels = torch.randn(batch, 3, 224, 224, generator=g)
    return ids, pixels


def median_wall_and_cpu(fns: dict, repeats: int, warmup: int = 1) -> tuple[dict, dict]:
    """Median wall and process-CPU seconds of each callable, calls interleaved (a, b, a, b, ...). On a shared
    machine the wall time depends on the load; the CPU time (the work done, with 1 thread) much less."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall: dict = {k: [] for k in fns}
    cpu: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - w)
            cpu[k].append(time.process_time() - c)
    return ({k: statistics.median(v) for k, v in wall.items()}, {k: statistics.median(v) for k, v in cpu.items()})


BEFORE = {"LINGVIS_FUSED_STEP": "0", "LINGVIS_LAST_PREFILL": "0"}  # lingvis without this round's fast paths


def without_fast_paths(fn):
    """fn run with the BEFORE switches set (restored after)."""
    def run():
        old = {k: os.environ.get(k) for k in BEFORE}
        os.environ.update(BEFORE)
        try:
            fn()
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return run


def timed(ours, ref, batch: int, new: int, repeats: int, ab: bool = True
          ) -> tuple[tuple[dict, dict], torch.Tensor, torch.Tensor]:
    ids, pixels = inputs(ours, batch)
    mask = torch.ones_like(ids)
    out = {}

    def run_ours():
        out["ours"] = ours.generate(ids, new, pixel_values=pixels)

    def run_before():
        out["before"] = ours.generate(ids, new, pixel_values=pixels)

    def run_ref():
        with torch.inference_mode():
            out["ref"] = ref.generate(input_ids=ids, pixel_values=pixels, attention_mask=mask, max_new_tokens=new,
                                      min_new_tokens=new, do_sample=False, use_cache=True)

    def run_mkl():  # every linear on MKL (LINGVIS_GEMM=mkl) instead of the measured per-shape choice
        with env_set("LINGVIS_GEMM", "mkl"):
            out["mkl"] = ours.generate(ids, new, pixel_values=pixels)

    def run_sdpa():  # torch's SDPA for every attention (LINGVIS_ATTENTION=sdpa) instead of the native kernel
        with env_set("LINGVIS_ATTENTION", "sdpa"):
            out["sdpa"] = ours.generate(ids, new, pixel_values=pixels)

    fns = {"ours": run_ours, "ref": run_ref,
           **({"before": without_fast_paths(run_before), "mkl": run_mkl} if ab else {}),
           **({"sdpa": run_sdpa} if ab and new == 1 else {})}  # attention's share: first tokens only
    times = median_wall_and_cpu(fns, repeats)
    if ab and not torch.equal(out["before"], out["ours"]):
        raise AssertionError("lingvis' tokens changed with the fast paths switched off")
    return times, out["ours"], out["ref"]


def decode_floor(ours) -> dict:
    """Weight bytes one decode step reads (every matrix of the language model: its linears and the LM head, not
    the input embedding table, of which a step reads one row) and the step time at the measured GEMV bandwidth."""
    linears = [m for m in ours.llm.modules() if isinstance(m, torch.nn.Linear)]
    nbytes = sum(m.weight.numel() * m.weight.element_size() for m in linears)
    bandwidth = gemv_bandwidth()
    return {"step_MB": round(nbytes / 1e6, 1), "gemv_GBs": round(bandwidth, 1), "floor_s": nbytes / bandwidth / 1e9}


def rate(n: int, full: float, first: float) -> float:
    """Decode tokens per second from the time of N tokens minus the time of the first one; NaN when a loaded
    machine made the longer call the faster one (the difference of two medians is then noise)."""
    return n / (full - first) if full > first else float("nan")


def run(quick: bool = False, threads: int | None = None, ab: bool = True) -> list[dict]:
    if threads:
        torch.set_num_threads(threads)
    new = 16 if quick else 64
    repeats = 3 if quick else 5
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ours, ref = build_pair(tmp)
        (t1, c1), a, b = timed(ours, ref, 1, 1, repeats, ab)
        r = row("llava time to first token, 1 image + 24 tokens (first tokens/s)", 1 / t1["ours"], 1 / t1["ref"],
                "1/s")
        r.update(ttft_ms_lingvis=round(1000 * t1["ours"], 1), ttft_ms_transformers=round(1000 * t1["ref"], 1),
                 cpu_ratio=round(c1["ref"] / c1["ours"], 3), identical=bool(torch.equal(a, b)))
        if ab:
            r.update(before_ms=round(1000 * t1["before"], 1), gain=round(t1["before"] / t1["ours"], 3),
                     cpu_gain=round(c1["before"] / c1["ours"], 3), mkl_ms=round(1000 * t1["mkl"], 1),
                     cpu_ratio_mkl=round(c1["ref"] / c1["mkl"], 3),
                     gemm_choice_gain_cpu=round(c1["mkl"] / c1["ours"], 3), sdpa_ms=round(1000 * t1["sdpa"], 1),
                     native_attention_gain_cpu=round(c1["sdpa"] / c1["ours"], 3))
        ids, pixels = inputs(ours, 1)
        # the products as aten matmuls (the profiler sees no shapes through oneDNN's packed linears), each timed
        # alone with torch.mm (`floor_mkl_ms`) and as the faster of MKL and oneDNN's packed kernel (`floor_ms`)
        with env_set("LINGVIS_PACKED_LINEAR", "0"):
            calls = record_matmuls(lambda: ours.generate(ids, 1, pixel_values=pixels))
        limit, limit_mkl = matmul_floor(calls, onednn=True), matmul_floor(calls)
        r.update(floor_ms=round(1000 * limit["floor_s"], 1), floor_mkl_ms=round(1000 * limit_mkl["floor_s"], 1),
                 matmul_GFLOP=round(limit["GFLOP"], 2), largest_ratio_at_floor=round(t1["ref"] / limit["floor_s"], 3))
        rows.append(r)
        for batch in (1, 8):
            (first, cfirst) = (t1, c1) if batch == 1 else timed(ours, ref, batch, 1, repeats, ab)[0]
            (full, cfull), a, b = timed(ours, ref, batch, new, repeats, ab)
            n = batch * (new - 1)
            r = row(f"llava greedy decode batch {batch} ({new} new tokens, one image per row)",
                    rate(n, full["ours"], first["ours"]), rate(n, full["ref"], first["ref"]), "tokens/s")
            r.update(identical_rows=float((a == b).all(dim=1).float().mean()), batch=batch, sweep="batch",
                     series="llava decode",
                     cpu_tokens_per_s_lingvis=round(rate(n, cfull["ours"], cfirst["ours"]), 2),
                     cpu_tokens_per_s_transformers=round(rate(n, cfull["ref"], cfirst["ref"]), 2),
                     cpu_ratio=round((cfull["ref"] - cfirst["ref"]) / (cfull["ours"] - cfirst["ours"]), 3))
            if ab:
                before = rate(n, full["before"], first["before"])
                r.update(before_tokens_per_s=round(before, 2), gain=round(r["lingvis"] / before, 3),
                         cpu_gain=round((cfull["before"] - cfirst["before"]) / (cfull["ours"] - cfirst["ours"]), 3),
                         gemm_choice_gain_cpu=round((cfull["mkl"] - cfirst["mkl"]) / (cfull["ours"] - cfirst["ours"]),
                                                    3))
            floor = decode_floor(ours)
            ref_step = (full["ref"] - first["ref"]) / (new - 1)
            r.update(step_MB=floor["step_MB"], gemv_GBs=floor["gemv_GBs"],
                     floor_step_ms=round(1000 * floor["floor_s"], 2), ref_step_ms=round(1000 * ref_step, 2),
                     largest_ratio_at_floor=round(ref_step / floor["floor_s"], 3))
            rows.append(r)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="16 new tokens, 3 repeats")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    ap.add_argument("--no-ab", action="store_true", help="skip timing lingvis with this round's fast paths off")
    args = ap.parse_args()
    rows = run(args.quick, args.threads, not args.no_ab)
    print_rows(rows)
    for r in rows:
        extra = {k: v for k, v in r.items() if k not in ("benchmark", "lingvis", "reference", "unit", "ratio")}
        print(f"  {r['benchmark']}: {extra}")


if __name__ == "__main__":
    main()
