"""ViT-B/32 image encoding throughput (images/s, 224px, fp32, 2 threads): lingvis ViT vs transformers
`CLIPVisionModel` holding the same random weights (saved by transformers, loaded by `lingvis.load`), both
under `torch.inference_mode()`, pooled outputs checked equal first. Two lingvis rows: the eager module, and
`lingvis.models.traced.trace_image_encoder` (TorchScript trace + freeze + optimize_for_inference), which
is what batch encoding (`lingvis search-images`, index building) uses.

    python -m benchmarks.vit_encode [--quick]
"""
from __future__ import annotations

import argparse
import tempfile

import torch

from ._timing import median_seconds, print_rows, row


def build_pair(tmp: str):
    import transformers

    import lingvis

    torch.manual_seed(0)
    cfg = transformers.CLIPVisionConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                        intermediate_size=3072, image_size=224, patch_size=32)
    ref = transformers.CLIPVisionModel(cfg).eval()
    ref.save_pretrained(tmp)
    ours = lingvis.load(tmp).eval()
    return ours, ref


def bench_batch(ours, traced, ref, batch: int, repeats: int) -> list[dict]:
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))

    def run_eager():
        with torch.inference_mode():
            return ours(x)

    def run_ref():
        with torch.inference_mode():
            return ref(pixel_values=x).pooler_output

    want = run_ref()
    diffs = {name: float((fn() - want).abs().max()) for name, fn in (("eager", run_eager), ("traced", lambda: traced(x)))}
    assert max(diffs.values()) <= 1e-4, f"outputs differ: {diffs}"
    t = median_seconds({"eager": run_eager, "traced": lambda: traced(x), "ref": run_ref}, repeats=repeats, warmup=1)
    rows = []
    for name in ("traced", "eager"):
        r = row(f"ViT-B/32 image encoding batch {batch} ({name})", batch / t[name], batch / t["ref"], "images/s")
        r["max_abs_diff"] = diffs[name]
        rows.append(r)
    return rows


def run(quick: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    batches, repeats = ((8,), 3) if quick else ((1, 16), 7)
    from lingvis.models.traced import trace_image_encoder

    with tempfile.TemporaryDirectory() as tmp:
        ours, ref = build_pair(tmp)
        traced = trace_image_encoder(ours)
        return [r for b in batches for r in bench_batch(ours, traced, ref, b, repeats)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 8 only, three timed repeats")
    print_rows(run(ap.parse_args().quick))


if __name__ == "__main__":
    main()
