"""Llama-shape decoding and prefill, lingvis vs transformers, same random weights (a transformers
`LlamaForCausalLM` folder loaded by lingvis through the production converter), fp32, KV cache on both sides:
batch-1 and batch-16 greedy decode tokens/s, prefill of 512 tokens, and lingvis int8 (W8A8-dynamic) batch-1
decode against transformers fp32. Each row also prints the memory-bandwidth bound: bytes of weights read per
decode step divided by the measured copy bandwidth of this machine (a `copy_` of a 512 MB buffer), and by the
weight-read rate of one matrix-vector product over a 512 MB fp32 matrix (what a batch-1 decode step does). The
prefill row prints the FLOP rate both sides reach against this machine's fp32 GEMM peak measured in the same run
(`F.linear` on the model's largest projection, as many rows as the prompt), and the largest ratio over transformers that peak allows.

The full run uses the TinyLlama shape (22 layers, width 2048, 32 heads / 4 kv heads, 1.1B parameters: 8.8 GB
for both models); `--quick` a 4-layer slice of it.

    python -m benchmarks.llama_decode [--quick]
"""
from __future__ import annotations

import argparse
import tempfile

import torch

from ._probes import copy_bandwidth, gemv_bandwidth, linear_gflops
from ._timing import median_seconds, print_rows, row

PROMPT_LEN = 16


def prefill_flops(model, T: int) -> float:
    """FLOPs of a prefill of T tokens with `last_only` logits: 2 x T x (block matrices) + causal attention
    (QK^T and AV, 2 x T^2 x width per layer) + the output head for one row."""
    blocks = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and n.startswith("blocks."))
    head = model.lm_head.weight.numel() if hasattr(model, "lm_head") else 0
    width = model.config.n_embd
    return 2 * T * blocks + 2 * T * T * width * len(model.blocks) + 2 * head


def build_pair(tmp: str, layers: int):
    import transformers

    import lingvis

    cfg = transformers.LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                                   num_hidden_layers=layers, num_attention_heads=32, num_key_value_heads=4,
                                   max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=False)
    torch.manual_seed(0)
    with torch.device("meta"):
        ref = transformers.LlamaForCausalLM(cfg)
    ref = ref.to_empty(device="cpu")
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.02)
    ref.save_pretrained(tmp, safe_serialization=True)
    ref = ref.eval()
    return lingvis.load(tmp), ref


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for n, p in model.named_parameters() if not n.endswith("wte.weight"))


def bench_decode(ours, ref, batch: int, new_tokens: int, repeats: int, bw: float, label: str = "fp32") -> dict:
    ids = torch.randint(0, 32000, (batch, PROMPT_LEN), generator=torch.Generator().manual_seed(1))
    out = {}

    def run_ours():
        out["ours"] = ours.generate(ids, max_new_tokens=new_tokens)

    def run_ref():
        with torch.inference_mode():
            out["ref"] = ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                      min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)

    t = median_seconds({"ours": run_ours, "ref": run_ref}, repeats=repeats, warmup=1)
    n = batch * new_tokens
    r = row(f"llama {len(ours.blocks)}x2048 (GQA 32/4) greedy decode batch {batch}, lingvis {label} vs HF fp32",
            n / t["ours"], n / t["ref"], "tokens/s")
    if label == "fp32":
        r["identical_rows"] = float((out["ours"] == out["ref"]).all(dim=1).float().mean())
    bound = bw * 1e9 / weight_bytes(ours if label == "fp32" else ref) * batch  # tokens/s if only weights moved
    r["bandwidth_bound"] = round(bound, 1)
    r["fraction_of_bound"] = round(r["lingvis"] / bound, 3) if label == "fp32" else None
    return r


def bench_prefill(ours, ref, T: int, repeats: int, peak: float) -> dict:
    ids = torch.randint(0, 32000, (1, T), generator=torch.Generator().manual_seed(2))

    def run_ours():
        with torch.inference_mode():
            ours(ids, last_only=True)

    def run_ref():
        with torch.inference_mode():
            ref(input_ids=ids, logits_to_keep=1)

    t = median_seconds({"ours": run_ours, "ref": run_ref}, repeats=repeats, warmup=1)
    r = row(f"llama {len(ours.blocks)}x2048 prefill of {T} tokens", T / t["ours"], T / t["ref"], "tokens/s")
    flops = prefill_flops(ours, T)
    r["gemm_peak_GFLOPs"] = round(peak, 1)
    r["lingvis_GFLOPs"], r["transformers_GFLOPs"] = round(flops / t["ours"] / 1e9, 1), round(flops / t["ref"] / 1e9, 1)
    r["largest_ratio_at_peak"] = round(peak / r["transformers_GFLOPs"], 3)
    return r


def run(quick: bool = False, threads: int = 2) -> list[dict]:
    from lingvis.quant import quantize_int8

    torch.set_num_threads(threads)
    layers, new_tokens, repeats = (4, 16, 1) if quick else (22, 32, 2)
    T = 512 if not quick else 128
    bw, gemv_bw, peak = copy_bandwidth(), gemv_bandwidth(), linear_gflops(T, 2048, 5632)  # the largest projection
    print(f"measured copy bandwidth: {bw:.1f} GB/s; matrix-vector weight reads {gemv_bw:.1f} GB/s; "
          f"fp32 GEMM peak {peak:.0f} GFLOP/s ({T} rows, {threads} threads)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ours, ref = build_pair(tmp, layers)
        rows = [bench_decode(ours, ref, b, new_tokens, repeats, bw) for b in (1, 16)]
        rows.append(bench_prefill(ours, ref, T, repeats, peak))
        quantize_int8(ours, activations="int8")
        rows.append(bench_decode(ours, ref, 1, new_tokens, repeats, bw, label="int8 W8A8"))
    for r in rows:
        r["copy_bandwidth_GBs"] = round(bw, 1)
        if r.get("fraction_of_bound"):  # fp32 rows: the bound counts fp32 weight bytes
            r["gemv_bandwidth_GBs"] = round(gemv_bw, 1)
            # weights read per decode step x steps per second (bound = bw / weight bytes per token)
            r["lingvis_weight_GBs"] = round(r["lingvis"] * bw / r["bandwidth_bound"], 1)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4 layers, 16 new tokens, one timed repeat")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rows = run(args.quick, args.threads)
    print_rows(rows)
    for r in rows:
        if r.get("bandwidth_bound"):
            frac = f", lingvis at {r['fraction_of_bound']:.2f}x of it" if r.get("fraction_of_bound") else ""
            if r.get("gemv_bandwidth_GBs"):
                frac += (f"; lingvis reads weights at {r['lingvis_weight_GBs']} GB/s, the matrix-vector probe at "
                         f"{r['gemv_bandwidth_GBs']} GB/s")
            print(f"  {r['benchmark']}: weight-read bound at {r['copy_bandwidth_GBs']} GB/s copy bandwidth "
                  f"{r['bandwidth_bound']} tokens/s{frac}", flush=True)
        if r.get("gemm_peak_GFLOPs"):
            print(f"  {r['benchmark']}: lingvis {r['lingvis_GFLOPs']} GFLOP/s, transformers {r['transformers_GFLOPs']} "
                  f"of the {r['gemm_peak_GFLOPs']} GFLOP/s fp32 GEMM peak: at most {r['largest_ratio_at_peak']}x "
                  "transformers is possible in fp32", flush=True)


if __name__ == "__main__":
    main()
