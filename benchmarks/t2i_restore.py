"""Where a flow-matching shapes model loses the shapes: noise real single-object renders to a noise level sigma,
integrate the model's velocity back to sigma 0 (Euler, about 25 * sigma steps, no guidance, the scene's object-list
caption) and ask the shapes detector whether exactly one object of the right shape (and one of the right colour)
comes back. High counts at low sigma and low counts at high sigma say the model draws outlines but cannot form an
object from pure noise.

    python -m benchmarks.t2i_restore --model RUN [--scenes 40] [--sigmas 0.2,0.35,0.5,0.7,0.9] [--swap]

`--swap`: the caption names the next shape in SHAPES instead of the image's (the colour is kept), and the table
adds how often exactly one object of the caption's shape comes back: the noise level at which the text, not the
image, sets the shape.
"""
from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch


def swapped_shape(scene):
    """The single-object scene with its object's shape replaced by the next one in SHAPES (caption of `--swap`)."""
    from dataclasses import replace

    from lingvis.data.shapes_scene import SHAPES, Scene

    o = scene.objects[0]
    return Scene([replace(o, shape=SHAPES[(SHAPES.index(o.shape) + 1) % len(SHAPES)])])


def restore_counts(model, tokenizer, scenes, sigmas, seed: int = 0, swap: bool = False) -> list[dict]:
    """[{sigma, shape, colour, n}] (and `caption_shape`, one object of the caption's shape, with `swap`: the
    caption names another shape than the image's, so `caption_shape` counts where the text sets the shape)."""
    from lingvis.data.shapes import render_scene
    from lingvis.data.shapes_language import captions
    from lingvis.diffusion.sampling import prompt_tokens, to_pil
    from lingvis.eval.shapes_detector import detect_shapes

    size = model.image_size
    x0 = torch.stack([torch.from_numpy(np.array(render_scene(s, size))).permute(2, 0, 1).float() / 127.5 - 1
                      for s in scenes])  # (N, 3, H, W) in [-1, 1]
    said = [swapped_shape(s) for s in scenes] if swap else scenes  # what the captions describe
    ids, mask = prompt_tokens(tokenizer, [captions(s, random.Random(seed))[0] for s in said], model.text_length)
    model.eval()
    rows = []
    with torch.no_grad():
        states, smask = model.encode_text(ids, mask)  # (N, L, D)
        den = model.sampling_denoiser
        for s in sigmas:
            eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
            x = (1 - s) * x0 + s * eps  # rectified flow at noise level s
            grid = torch.linspace(s, 0, max(2, round(25 * s)) + 1)
            for a, b in zip(grid[:-1], grid[1:]):
                x = x + (b - a) * den(x, torch.full((len(x),), float(a) * 1000), states, smask)
            shape_ok = colour_ok = caption_ok = 0
            for im, sc, cap in zip(to_pil((x / 2 + 0.5).clamp(0, 1)), scenes, said):
                d, o = detect_shapes(im), sc.objects[0]
                shape_ok += len(d) == 1 and d[0].shape == o.shape
                colour_ok += any(q.colour == o.colour for q in d)
                caption_ok += len(d) == 1 and d[0].shape == cap.objects[0].shape
            row = {"sigma": s, "shape": shape_ok, "colour": colour_ok, "n": len(scenes)}
            rows.append({**row, "caption_shape": caption_ok} if swap else row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a flow-matching text-to-image run (the shapes recipe's)")
    ap.add_argument("--scenes", type=int, default=40, help="single-object test scenes")
    ap.add_argument("--sigmas", default="0.2,0.35,0.5,0.7,0.9")
    ap.add_argument("--swap", action="store_true",
                    help="captions name another shape: count where the restored object takes the caption's shape")
    a = ap.parse_args()
    torch.set_num_threads(1)
    import lingvis
    from lingvis.data.shapes import make_split_scenes

    model, tok = lingvis.load(a.model), lingvis.load_tokenizer(a.model)
    if model.config.scheduler.get("_class_name") != "FlowMatchEulerDiscreteScheduler":
        raise SystemExit("t2i_restore integrates a rectified-flow velocity: the model must be flow matching")
    scenes = [s for s in make_split_scenes("test", 20 * a.scenes, 0) if len(s.objects) == 1][:a.scenes]
    t0 = time.process_time()
    rows = restore_counts(model, tok, scenes, [float(x) for x in a.sigmas.split(",")], swap=a.swap)
    extra = " one object, the caption's (swapped) shape |" if a.swap else ""
    print(f"| start sigma | one object, the image's shape | right colour found |{extra}\n|---:|---:|---:|"
          + ("---:|" if a.swap else ""))
    for r in rows:
        cap = f" {r['caption_shape']}/{r['n']} |" if a.swap else ""
        print(f"| {r['sigma']:g} | {r['shape']}/{r['n']} | {r['colour']}/{r['n']} |{cap}")
    print(f"{time.process_time() - t0:.1f} CPU-s, 1 thread")


if __name__ == "__main__":
    main()
