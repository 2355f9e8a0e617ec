"""Does the denoiser's output carry the shape word? On single-object test scenes and their shape twins (the same
object with the next shape in SHAPES, `data/shape_twins.py`), noised with the same noise to sigma, compare the
sampling (EMA) denoiser's x0 estimates under the two captions: the share of the twins' true x0 difference that the
estimates' difference explains, 1 - |d_est - d_true|^2 / |d_true|^2 (0: the output ignores the shape word; 1: it
swaps the outline exactly), both estimates under the image's own x_t (`same input`: only the caption differs, what
a sampler needs to draw the named shape) and each under its own x_t (`own input`: what the twin loss trains).
Also the cosine of the two differences. Cheap (2 forwards per scene and sigma): it can move before the samples do.

    python -m benchmarks.t2i_twin_readout --model RUN [--model RUN2 ...] [--scenes 40] [--sigmas 0.5,0.7,0.9]
"""
from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch


def twin_readout(model, tokenizer, scenes, sigmas, seed: int = 0) -> list[dict]:
    """[{sigma, same_explained, own_explained, same_cos}] over the scenes and their next-shape twins."""
    from benchmarks.t2i_restore import swapped_shape
    from lingvis.data.shapes import render_scene
    from lingvis.data.shapes_language import captions
    from lingvis.diffusion.sampling import prompt_tokens

    size = model.image_size

    def pixels(ss):
        return torch.stack([torch.from_numpy(np.array(render_scene(s, size))).permute(2, 0, 1).float() / 127.5 - 1
                            for s in ss])  # (N, 3, H, W) in [-1, 1]

    twins = [swapped_shape(s) for s in scenes]
    xa, xb = pixels(scenes), pixels(twins)
    d_true = xb - xa  # (N, 3, H, W)
    ids_a, mask_a = prompt_tokens(tokenizer, [captions(s, random.Random(seed))[0] for s in scenes], model.text_length)
    ids_b, mask_b = prompt_tokens(tokenizer, [captions(s, random.Random(seed))[0] for s in twins], model.text_length)
    model.eval()
    rows = []
    with torch.no_grad():
        sa, ma = model.encode_text(ids_a, mask_a)
        sb, mb = model.encode_text(ids_b, mask_b)
        den = model.sampling_denoiser
        for s in sigmas:
            eps = torch.randn(xa.shape, generator=torch.Generator().manual_seed(seed))
            t = torch.full((len(xa),), s * 1000)
            xta, xtb = (1 - s) * xa + s * eps, (1 - s) * xb + s * eps
            est_a = xta - s * den(xta, t, sa, ma)  # (N, 3, H, W) x0 estimates (rectified flow)
            est_b_same = xta - s * den(xta, t, sb, mb)
            est_b_own = xtb - s * den(xtb, t, sb, mb)
            energy = d_true.square().sum(dim=(1, 2, 3))  # (N,)
            same, own = est_b_same - est_a, est_b_own - est_a
            rows.append({
                "sigma": s,
                "same_explained": float((1 - (same - d_true).square().sum(dim=(1, 2, 3)) / energy).mean()),
                "own_explained": float((1 - (own - d_true).square().sum(dim=(1, 2, 3)) / energy).mean()),
                "same_cos": float(torch.nn.functional.cosine_similarity(same.flatten(1), d_true.flatten(1)).mean()),
            })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, help="a flow-matching text-to-image run")
    ap.add_argument("--scenes", type=int, default=40, help="single-object test scenes")
    ap.add_argument("--sigmas", default="0.5,0.7,0.9")
    a = ap.parse_args()
    torch.set_num_threads(1)
    import lingvis
    from lingvis.data.shapes import make_split_scenes

    scenes = [s for s in make_split_scenes("test", 800, 0) if len(s.objects) == 1][:a.scenes]
    sigmas = [float(x) for x in a.sigmas.split(",")]
    print("| model | sigma | explained, same input | explained, own input | cosine, same input |")
    print("|---|---:|---:|---:|---:|")
    for path in a.model:
        t0 = time.process_time()
        model, tok = lingvis.load(path), lingvis.load_tokenizer(path)
        for r in twin_readout(model, tok, scenes, sigmas):
            print(f"| {path} | {r['sigma']:g} | {r['same_explained']:+.3f} | {r['own_explained']:+.3f} | "
                  f"{r['same_cos']:+.3f} |")
        print(f"<!-- {path}: {time.process_time() - t0:.1f} CPU-s -->")


if __name__ == "__main__":
    main()
