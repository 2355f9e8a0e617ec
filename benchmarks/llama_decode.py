"""Llama-shape decoding and prefill, lingvis vs transformers, same random weights (a transformers
`LlamaForCausalLM` folder loaded by lingvis through the production converter), fp32, KV cache on both sides:
batch-1 and batch-16 greedy decode tokens/s, prefill of 512 tokens, and lingvis int8 (W8A8-dynamic) batch-1
decode against transformers fp32. Each row also prints the memory-bandwidth bound: bytes of weights read per
decode step divided by the measured copy bandwidth of this machine (a `copy_` of a 512 MB buffer).

The full run uses the TinyLlama shape (22 layers, width 2048, 32 heads / 4 kv heads, 1.1B parameters: 8.8 GB
for both models); `--quick` a 4-layer slice of it.

    python -m benchmarks.llama_decode [--quick]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from ._timing import median_seconds, print_rows, row

PROMPT_LEN = 16


def bandwidth_gbs() -> float:
    """Measured memory bandwidth (read + write) of one large copy, GB/s."""
    a = torch.empty(128 << 20)  # 512 MB
    b = torch.empty_like(a)
    a.fill_(1.0)
    b.copy_(a)
    t0 = time.perf_counter()
    for _ in range(3):
        b.copy_(a)
    return 3 * 2 * a.numel() * 4 / (time.perf_counter() - t0) / 1e9


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


def bench_prefill(ours, ref, T: int, repeats: int) -> dict:
    ids = torch.randint(0, 32000, (1, T), generator=torch.Generator().manual_seed(2))

    def run_ours():
        with torch.inference_mode():
            ours(ids, last_only=True)

    def run_ref():
        with torch.inference_mode():
            ref(input_ids=ids, logits_to_keep=1)

    t = median_seconds({"ours": run_ours, "ref": run_ref}, repeats=repeats, warmup=1)
    return row(f"llama {len(ours.blocks)}x2048 prefill of {T} tokens", T / t["ours"], T / t["ref"], "tokens/s")


def run(quick: bool = False, threads: int = 2) -> list[dict]:
    from lingvis.quant import quantize_int8

    torch.set_num_threads(threads)
    layers, new_tokens, repeats = (4, 16, 1) if quick else (22, 32, 2)
    bw = bandwidth_gbs()
    print(f"measured copy bandwidth: {bw:.1f} GB/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        ours, ref = build_pair(tmp, layers)
        rows = [bench_decode(ours, ref, b, new_tokens, repeats, bw) for b in (1, 16)]
        rows.append(bench_prefill(ours, ref, 512 if not quick else 128, repeats))
        quantize_int8(ours, activations="int8")
        rows.append(bench_decode(ours, ref, 1, new_tokens, repeats, bw, label="int8 W8A8"))
    for r in rows:
        r["copy_bandwidth_GBs"] = round(bw, 1)
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
            print(f"  {r['benchmark']}: weight-read bound at {r['copy_bandwidth_GBs']} GB/s copy bandwidth "
                  f"{r['bandwidth_bound']} tokens/s{frac}", flush=True)


if __name__ == "__main__":
    main()
