"""Does a REPA run's aligned block read the shape word? On single-object test scenes noised to sigma (rectified
flow), the run's raw denoiser with its training-only REPA head predicts the encoder's features of the clean image;
this prints, per sigma, the mean cosine (over tokens) of that prediction with the image's target features given
the scene's caption and given a caption naming the next shape (colour kept), and how often the prediction is
closer to the image's target than to the target of the same scene rendered with the next shape (shape readout;
0.5 = the block does not know the shape; at high sigma only the caption can tell it).

    python -m benchmarks.t2i_repa_probe --model RUN --encoder ENC [--layer -2] [--center] [--depth 2]
        [--scenes 40] [--sigmas 0.5,0.7,0.9,0.95]

`--encoder/--layer/--center/--depth` must be the run's REPA settings (the head was trained on those targets).
"""
from __future__ import annotations

import argparse
import math
import random
import time

import numpy as np
import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--layer", type=int)
    ap.add_argument("--center", action="store_true")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--sigmas", default="0.5,0.7,0.9,0.95")
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.process_time()
    import lingvis
    from benchmarks.t2i_restore import swapped_shape
    from lingvis.data.shapes import make_split_scenes, render_scene
    from lingvis.data.shapes_language import captions
    from lingvis.diffusion.sampling import prompt_tokens
    from lingvis.tasks.repa import block_output, load_repa_encoder

    model, tok = lingvis.load(a.model), lingvis.load_tokenizer(a.model)
    if model.repa_head is None:
        raise SystemExit(f"{a.model} has no REPA head (train it with --repa-weight)")
    enc = load_repa_encoder(a.encoder, a.layer)
    scenes = [s for s in make_split_scenes("test", 800, 0) if len(s.objects) == 1][:a.scenes]
    swapped = [swapped_shape(s) for s in scenes]
    size = model.image_size

    def render(ss):  # (N, 3, H, W) in [-1, 1]
        return torch.stack([torch.from_numpy(np.array(render_scene(s, size))).permute(2, 0, 1).float() / 127.5 - 1
                            for s in ss])

    x0, x_sw = render(scenes), render(swapped)
    grid = model.denoiser.config.grid
    tgt, tgt_sw = enc(x0, grid), enc(x_sw, grid)  # (N, g*g, C) each
    if a.center:  # the batch mean of both sets, as training centres each batch
        mean = torch.cat([tgt, tgt_sw]).mean(dim=(0, 1), keepdim=True)
        tgt, tgt_sw = tgt - mean, tgt_sw - mean
    model.eval()
    texts = {k: [captions(s, random.Random(0))[0] for s in ss] for k, ss in (("own", scenes), ("next", swapped))}
    print(f"## {a.model} (REPA block {a.depth}, {len(scenes)} single-object test scenes)\n")
    print("| sigma | cos, own caption | cos, next-shape caption | readout own caption (own target closer) | "
          "readout next-shape caption |")
    print("|---:|---:|---:|---:|---:|")
    for s in [float(v) for v in a.sigmas.split(",")]:
        eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
        x_t = (1 - s) * x0 + s * eps
        row = [f"{s:g}"]
        cos, read = [], []
        for key in ("own", "next"):
            ids, mask = prompt_tokens(tok, texts[key], model.text_length)
            with torch.no_grad():
                states, smask = model.encode_text(ids, mask)
            with torch.enable_grad(), block_output(model.denoiser, a.depth) as hidden:  # grad on: no fused blocks
                model.denoiser(x_t, torch.full((len(x0),), s * 1000), states, smask)
            with torch.no_grad():
                pred = model.repa_head(hidden[0])  # (N, g*g, C)
                c_own = F.cosine_similarity(pred, tgt, dim=-1).mean(1)  # (N,)
                c_sw = F.cosine_similarity(pred, tgt_sw, dim=-1).mean(1)
            cos.append(f"{float(c_own.mean()):.4f}")
            read.append(f"{int((c_own > c_sw).sum())}/{len(x0)}")
        print("| " + " | ".join(row + cos + read) + " |")
    print(f"\n{time.process_time() - t0:.1f} CPU-s, 1 thread ({math.isqrt(tgt.shape[1])}x{math.isqrt(tgt.shape[1])} "
          "tokens)")


if __name__ == "__main__":
    main()
