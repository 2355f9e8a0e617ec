"""ViT-B/32 image encoding throughput (images/s, 224px, 2 threads): lingvis vs transformers
`CLIPVisionModel` holding the same random weights (saved by transformers, loaded by `lingvis.load`), all
under `torch.inference_mode()`, pooled outputs compared first.

Rows: lingvis fp32 eager (same fp32 GEMMs as transformers: expect ~1x), lingvis
`FastImageEncoder(precision="int8")` (dynamic int8 linears) and `FastImageEncoder(precision="bf16")`
(bfloat16 weights and activations: AMX / AVX512-BF16 GEMMs where the CPU has them; `bf16_hw` says whether
it does), with the cosine similarity of their embeddings to transformers' fp32 ones. Both wall time and process CPU time are measured (interleaved calls,
median): on a shared machine the CPU-time ratio is the steadier one.

    python -m benchmarks.vit_encode [--quick]
"""
from __future__ import annotations

import argparse
import tempfile

import torch
import torch.nn.functional as F

from ._timing import print_rows, row, timed


def build_pair(tmp: str):
    import transformers

    import lingvis

    torch.manual_seed(0)
    cfg = transformers.CLIPVisionConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                        intermediate_size=3072, image_size=224, patch_size=32)
    ref = transformers.CLIPVisionModel(cfg).eval()
    ref.save_pretrained(tmp)
    return lingvis.load(tmp).eval(), ref


def bench_batch(ours, fast, ref, batch: int, repeats: int) -> list[dict]:
    """`fast`: {"int8": encoder, "bf16": encoder}."""
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))

    def run_ref():
        with torch.inference_mode():
            return ref(pixel_values=x).pooler_output

    def run_eager():
        with torch.inference_mode():
            return ours(x)

    want = run_ref()
    diff = float((run_eager() - want).abs().max())
    assert diff <= 1e-4, f"fp32 outputs differ by {diff}"
    from lingvis.models.fast_encode import has_fast_bf16

    cos = {k: float(F.cosine_similarity(enc(x), want).min()) for k, enc in fast.items()}
    fns = {"fp32": run_eager, "ref": run_ref, **{k: (lambda enc=enc: enc(x)) for k, enc in fast.items()}}
    wall, cpu = timed(fns, repeats)
    rows = []
    for name in (*fast, "fp32"):
        r = row(f"ViT-B/32 image encoding batch {batch} (lingvis {name})", batch / wall[name], batch / wall["ref"],
                "images/s")
        r.update(cpu_ratio=round(cpu["ref"] / cpu[name], 3),
                 **({"min_cosine_vs_fp32": round(cos[name], 6)} if name in cos else {"max_abs_diff": diff}))
        if name == "bf16":
            r["bf16_hw"] = has_fast_bf16()
        rows.append(r)
    return rows


def run(quick: bool = False) -> list[dict]:
    from lingvis.models.fast_encode import FastImageEncoder

    torch.set_num_threads(2)
    batches, repeats = ((8,), 3) if quick else ((1, 16), 7)
    with tempfile.TemporaryDirectory() as tmp:
        ours, ref = build_pair(tmp)
        fast = {p: FastImageEncoder(ours, precision=p) for p in ("int8", "bf16")}
        return [r for b in batches for r in bench_batch(ours, fast, ref, b, repeats)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 8 only, three timed repeats")
    rows = run(ap.parse_args().quick)
    print_rows(rows)
    for r in rows:
        extra = f", min cosine to fp32 {r['min_cosine_vs_fp32']}" if "min_cosine_vs_fp32" in r else ""
        print(f"  {r['benchmark']}: CPU-time ratio {r['cpu_ratio']:.2f}x{extra}", flush=True)


if __name__ == "__main__":
    main()
