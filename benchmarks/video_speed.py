"""Video Transformer forward speed: lingvis `VideoTransformer` vs transformers on the same random weights
(saved by transformers, loaded by `lingvis.load`) and the same input, under `torch.inference_mode()`, logits
compared first. VideoMAE-Base shape (16 frames of 224px, 2x16x16 tubelets: 1568 tokens, joint attention) and
TimeSformer-Base (8 frames of 224px, 16px patches, divided space-time attention), batch 1, 400 classes.
Wall and process CPU time (interleaved calls, median); on a shared machine the CPU-time ratio is steadier.

    python -m benchmarks.video_speed [--repeats 3] [--threads 2] [--only videomae|timesformer]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile

import torch

from .vit_encode import timed


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

        diff = float((run_ours() - run_ref()).abs().max())
        wall, cpu = timed({"lingvis": run_ours, "transformers": run_ref}, repeats)
    return {"benchmark": f"{kind} base forward, batch 1, {frames} frames of 224px",
            "lingvis_s": round(wall["lingvis"], 3), "transformers_s": round(wall["transformers"], 3),
            "ratio_wall": round(wall["transformers"] / wall["lingvis"], 3),
            "lingvis_cpu_s": round(cpu["lingvis"], 3), "transformers_cpu_s": round(cpu["transformers"], 3),
            "ratio_cpu": round(cpu["transformers"] / cpu["lingvis"], 3), "logits_max_abs_diff": diff,
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
