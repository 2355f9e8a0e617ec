"""ViT-B/32 image encoding throughput (images/s, 224px, fp32, 2 threads): lingvis ViT vs transformers
`CLIPVisionModel` holding the same random weights (saved by transformers, loaded by `lingvis.load`), both
under `torch.inference_mode()`, pooled output checked equal first.

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


def bench_batch(ours, ref, batch: int, repeats: int) -> dict:
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))

    def run_ours():
        with torch.inference_mode():
            return ours(x)

    def run_ref():
        with torch.inference_mode():
            return ref(pixel_values=x).pooler_output

    diff = float((run_ours() - run_ref()).abs().max())
    assert diff <= 1e-4, f"outputs differ by {diff}"
    t = median_seconds({"ours": run_ours, "ref": run_ref}, repeats=repeats, warmup=1)
    r = row(f"ViT-B/32 image encoding batch {batch}", batch / t["ours"], batch / t["ref"], "images/s")
    r["max_abs_diff"] = diff
    return r


def run(quick: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    batches, repeats = ((8,), 3) if quick else ((1, 16), 7)
    with tempfile.TemporaryDirectory() as tmp:
        ours, ref = build_pair(tmp)
        return [bench_batch(ours, ref, b, repeats) for b in batches]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 8 only, three timed repeats")
    print_rows(run(ap.parse_args().quick))


if __name__ == "__main__":
    main()
