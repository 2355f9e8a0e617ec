"""Train the frozen per-pixel shape segmenter of the shape loss (`lingvis.tasks.shape_seg`, `t2i_variants
--shape-weight W --shape-segmenter DIR`) on fresh shapes renders and report its accuracy on held-out renders, clean
and augmented (blur up to 1.2 px, noise up to 0.3), and its CPU time (count it in a learning run's budget).

    python -m benchmarks.t2i_shape_seg --out DIR [--scenes 3000] [--steps 600] [--width 32]
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--scenes", type=int, default=3000)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--test", type=int, default=300)
    a = ap.parse_args()
    torch.set_num_threads(1)
    from lingvis.data.shapes_scene import make_scene
    from lingvis.tasks.shape_seg import (
        ShapeSegConfig,
        augment,
        object_pixel_accuracy,
        render_batch,
        train_shape_segmenter,
    )

    model, info = train_shape_segmenter(a.scenes, a.steps, config=ShapeSegConfig(width=a.width))
    rng = random.Random("lingvis-shape-seg/test")
    images, labels = render_batch([make_scene(rng, 1, 3, held_out="allow") for _ in range(a.test)])
    info["clean"] = object_pixel_accuracy(model, images, labels)
    info["augmented"] = object_pixel_accuracy(model, augment(images, torch.Generator().manual_seed(1)), labels)
    model.save(a.out)
    (Path(a.out) / "report.json").write_text(json.dumps(info, indent=2))
    print(json.dumps(info))


if __name__ == "__main__":
    main()
