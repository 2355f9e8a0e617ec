"""Is the shapes detector of `lingvis eval text-to-image` fair to soft images? Its exact-scene accuracy on
ground-truth 32px renders of random 1-3 object scenes after a Gaussian blur (anti-aliasing-like softening) and/or
pixel noise, with the misses broken down (wrong count, colour, shape (true -> found), place); and, for an eval
grid (`--grid`, 8 images per category as `evaluate_text_to_image` saves it), the detector's per-object decisions:
of the objects the prompts name, how many are found in the right colour, the right shape, both.

    python -m benchmarks.t2i_detector_robustness [--scenes 200] [--grid RUN/grid_guidance4.png --per-category 20]
"""
from __future__ import annotations

import argparse
import collections
import math
import random

import numpy as np
from PIL import Image, ImageFilter

from lingvis.data.shapes import make_scene, render_scene
from lingvis.eval.geneval_shapes import CATEGORIES, make_items
from lingvis.eval.shapes_detector import detect_shapes, scene_matches

DEGRADATIONS = ((0, 0), (0.5, 0), (0.7, 0), (1.0, 0), (0, 8), (0, 16), (0.5, 8), (0.7, 16))  # (blur sigma px, noise /255)


def degrade(im: Image.Image, blur: float, noise: float, rng: np.random.Generator) -> Image.Image:
    if blur:
        im = im.filter(ImageFilter.GaussianBlur(blur))
    if noise:
        a = np.asarray(im).astype(np.float32) + rng.normal(0, noise, (im.size[1], im.size[0], 3))
        im = Image.fromarray(a.clip(0, 255).astype(np.uint8))
    return im


def miss_kind(dets, objects) -> str:
    if len(dets) != len(objects):
        return "count"
    for o in objects:
        d = min(dets, key=lambda d: math.hypot(d.cx - o.cx, d.cy - o.cy))
        if d.colour != o.colour:
            return "colour"
        if d.shape != o.shape:
            return f"shape {o.size} {o.shape}->{d.shape}"
    return "place"


def robustness(n: int, size: int = 32) -> list[dict]:
    rows = []
    for blur, noise in DEGRADATIONS:
        rng, nrng = random.Random("detector/0"), np.random.default_rng(0)
        ok, misses = 0, collections.Counter()
        for _ in range(n):
            scene = make_scene(rng, 1, 3, "allow")
            dets = detect_shapes(degrade(render_scene(scene, size), blur, noise, nrng))
            hit = scene_matches(dets, scene.objects)
            ok += hit
            if not hit:
                misses[miss_kind(dets, scene.objects)] += 1
        rows.append({"blur": blur, "noise": noise, "accuracy": ok / n, "misses": dict(misses.most_common(4))})
    return rows


def grid_decisions(path: str, per_category: int, size: int = 32, pad: int = 2) -> dict:
    grid, items = Image.open(path).convert("RGB"), make_items(per_category, 0)
    tot = collections.Counter()
    for r, c in enumerate(CATEGORIES):
        for k, it in enumerate([it for it in items if it.category == c][:8]):
            x, y = k * (size + pad), r * (size + pad)
            dets = detect_shapes(grid.crop((x, y, x + size, y + size)))
            for colour, shape, _ in it.objects:
                tot["objects named"] += 1
                tot["colour found"] += any(d.colour == colour for d in dets)
                tot["shape found"] += any(d.shape == shape for d in dets)
                tot["both on one region"] += any(d.colour == colour and d.shape == shape for d in dets)
            tot["images"], tot["regions"] = tot["images"] + 1, tot["regions"] + len(dets)
            tot["prompts passed"] += bool(it.check(dets))
    return dict(tot)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=200, help="ground-truth scenes per degradation")
    ap.add_argument("--grid", help="an eval grid (grid_guidance4.png) whose per-object decisions to count")
    ap.add_argument("--per-category", type=int, default=20, help="prompts per category of the run behind --grid")
    a = ap.parse_args()
    print("| blur sigma (px) | noise std (/255) | exact-scene accuracy | most common misses |\n|---:|---:|---:|---|")
    for r in robustness(a.scenes):
        print(f"| {r['blur']} | {r['noise']} | {r['accuracy']:.3f} | {r['misses']} |", flush=True)
    if a.grid:
        print(a.grid, grid_decisions(a.grid, a.per_category))


if __name__ == "__main__":
    main()
