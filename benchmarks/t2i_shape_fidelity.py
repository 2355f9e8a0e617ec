"""Drawing fidelity of a flow-matching shapes model, apart from what the prompt asks: (1) prompt-blind samples (the
empty prompt, guidance 1) read by the shapes detector: objects per image, the share of detected objects whose
template mismatch is within what ground-truth renders show ("clean": at most the 95th percentile of the mismatch on
ground-truth objects, measured here on the same detector), the mix of shapes drawn (the data has each of the 5
shapes equally often; blobs read as circles and squares) and (2) restoration of noised single-object test renders
(`benchmarks.t2i_restore`) with the scene's caption and with a caption naming another shape.

    python -m benchmarks.t2i_shape_fidelity --model RUN [--model RUN2] [--images 64] [--sigmas 0.35,0.5]
        [--steps 25] [--reference 300]

The reference row calibrates the threshold: ground-truth renders of random 1-3 object scenes, plain and after a
0.7 px Gaussian blur (the softening at which the detector's scene accuracy falls to 84%)."""
from __future__ import annotations

import argparse
import random
import time
from collections import Counter

import numpy as np
import torch

from lingvis.data.shapes_scene import SHAPES


def reference_errors(n: int, blur: float = 0.0, size: int = 32, seed: int = 0) -> list:
    """Detections on ground-truth renders of n random 1-3 object scenes (optionally Gaussian-blurred)."""
    from PIL import ImageFilter

    from lingvis.data.shapes import render_scene
    from lingvis.data.shapes_scene import make_scene
    from lingvis.eval.shapes_detector import detect_shapes

    rng, dets = random.Random(f"fidelity/{seed}"), []
    for _ in range(n):
        im = render_scene(make_scene(rng, 1, 3, "allow"), size)
        dets.append(detect_shapes(im.filter(ImageFilter.GaussianBlur(blur)) if blur else im))
    return dets


def summarise(dets: list, threshold: float) -> dict:
    """Per-image detections -> objects per image, share of clean objects, mean mismatch, shape mix."""
    flat = [d for ds in dets for d in ds]
    mix = Counter(d.shape for d in flat)
    n = max(1, len(flat))
    return {"images": len(dets), "objects_per_image": len(flat) / max(1, len(dets)),
            "clean_share": sum(d.error <= threshold for d in flat) / n,
            "mean_error": float(np.mean([d.error for d in flat])) if flat else float("nan"),
            "mix": {s: mix.get(s, 0) / n for s in SHAPES},
            "empty": sum(not ds for ds in dets)}


def sample_detections(model, tokenizer, images: int, steps: int, seed: int = 0) -> list:
    """Detections on `images` samples of the empty prompt, unguided (the model's own prior; `generate_images`
    refuses an empty prompt, so this runs its loop with the empty prompt's text states)."""
    from lingvis.diffusion.sampling import encode_prompts, resolve_scheduler, sample_latents, to_pil
    from lingvis.eval.shapes_detector import detect_shapes

    model.eval()
    with torch.no_grad():
        text, mask = encode_prompts(model, tokenizer, [""])  # (1, L, D)
        text = text.repeat_interleave(images, dim=0)  # (N, L, D)
        mask = mask.repeat_interleave(images, dim=0) if mask is not None else None
        sched = resolve_scheduler(model, None)
        sched.set_timesteps(steps)
        shape = (images, model.latent_channels, model.image_size // model.downscale,
                 model.image_size // model.downscale)
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * sched.init_noise_sigma
        x = sample_latents(model, text, mask, None, None, sched, steps, 1.0, x, None, False)  # (N, C, h, w)
        ims = to_pil((model.from_latents(x) / 2 + 0.5).clamp(0, 1))
    return [detect_shapes(im) for im in ims]


def row(label: str, s: dict) -> str:
    mix = " / ".join(f"{s['mix'][k]:.2f}" for k in SHAPES)
    return (f"| {label} | {s['images']} | {s['objects_per_image']:.2f} | {s['empty']} | {s['clean_share']:.2f} | "
            f"{s['mean_error']:.3f} | {mix} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, help="a flow-matching text-to-image run")
    ap.add_argument("--images", type=int, default=64, help="prompt-blind samples per model")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--sigmas", default="0.35,0.5", help="start sigmas of the restoration rows ('' for none)")
    ap.add_argument("--scenes", type=int, default=40, help="single-object test scenes of the restoration rows")
    ap.add_argument("--reference", type=int, default=300, help="ground-truth scenes that set the clean threshold")
    a = ap.parse_args()
    torch.set_num_threads(1)
    import lingvis
    from benchmarks.t2i_restore import restore_counts
    from lingvis.data.shapes import make_split_scenes

    ref = reference_errors(a.reference)
    threshold = float(np.quantile([d.error for ds in ref for d in ds], 0.95))
    print(f"clean: template mismatch <= {threshold:.3f} (95th percentile on {a.reference} ground-truth scenes)\n")
    print(f"| images | n | objects / image | empty | clean share | mean mismatch | {' / '.join(SHAPES)} |\n"
          "|---|---:|---:|---:|---:|---:|---|")
    print(row("ground truth", summarise(ref, threshold)))
    print(row("ground truth, 0.7 px blur", summarise(reference_errors(a.reference, blur=0.7), threshold)))
    sigmas = [float(x) for x in a.sigmas.split(",") if x]
    scenes = [s for s in make_split_scenes("test", 20 * a.scenes, 0) if len(s.objects) == 1][:a.scenes]
    for run in a.model:
        model, tok = lingvis.load(run), lingvis.load_tokenizer(run)
        if model.config.scheduler.get("_class_name") != "FlowMatchEulerDiscreteScheduler":
            raise SystemExit(f"{run}: t2i_shape_fidelity integrates a rectified-flow velocity: needs flow matching")
        t0 = time.process_time()
        print(row(f"{run}: empty prompt, guidance 1, {a.steps} steps",
                  summarise(sample_detections(model, tok, a.images, a.steps), threshold)))
        if sigmas:
            own = restore_counts(model, tok, scenes, sigmas)
            swap = restore_counts(model, tok, scenes, sigmas, swap=True)
            cells = "; ".join(f"sigma {o['sigma']:g}: {o['shape']}/{o['n']} (swapped caption {w['shape']}/{w['n']}, "
                              f"its shape {w['caption_shape']})" for o, w in zip(own, swap))
            print(f"|  | restoration, one object of the image's shape: {cells} |")
        print(f"|  | {time.process_time() - t0:.1f} CPU-s, 1 thread |")


if __name__ == "__main__":
    main()
