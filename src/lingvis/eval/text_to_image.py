"""`lingvis evaluate text-to-image`: a GenEval-style compositional score on the shapes world (the detector is
validated on ground-truth renders first), CLIP score with a lingvis CLIP, and FID computed on CLIP image
features against held-out real renders."""
from __future__ import annotations

import functools
import time

import torch

from ..data.shapes import make_split_scenes, render_scene
from ..diffusion.sampling import generate_images, image_grid
from .geneval_shapes import CATEGORIES, make_items
from .shapes_detector import detect_shapes, validate_detector

DETECTOR_MIN_ACCURACY = 0.99


@functools.lru_cache(maxsize=8)
def _validated(n: int, size: int, seed: int) -> dict:
    return validate_detector(n, size, seed)


def geneval_scores(images, items) -> dict:
    """Per-category accuracy and their mean ('overall', as GenEval averages its tasks)."""
    hits: dict[str, list[bool]] = {c: [] for c in CATEGORIES}
    for im, item in zip(images, items):
        hits[item.category].append(bool(item.check(detect_shapes(im))))
    scores = {c: sum(h) / len(h) for c, h in hits.items() if h}
    return {**scores, "overall": sum(scores.values()) / len(scores)}


def clip_score(clip, tokenizer, images, prompts) -> float:
    """100 * mean max(cos(image, prompt), 0) with CLIP embeddings (the usual CLIPScore scale)."""
    from ..zeroshot import embed_images, embed_texts

    sims = (embed_images(clip, images) * embed_texts(clip, tokenizer, prompts)).sum(-1)
    return float(100 * sims.clamp(min=0).mean())


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(m)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """FID between two (N, D) feature sets: |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)."""
    a, b = a.double(), b.double()
    if len(a) < 2 or len(b) < 2:
        raise ValueError("FID needs at least two images on each side")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = torch.cov(a.T), torch.cov(b.T)
    root = _sqrtm_psd(s_a)
    cross = _sqrtm_psd(root @ s_b @ root)
    return float((mu_a - mu_b).square().sum() + torch.trace(s_a) + torch.trace(s_b) - 2 * torch.trace(cross))


@torch.no_grad()
def clip_features(clip, images) -> torch.Tensor:
    """CLIP image-tower features (before the projection) of PIL images."""
    from ..recipes.clip_data import transform_for

    tf = transform_for(clip)
    device = next(clip.parameters()).device
    return torch.cat([clip.image_features(torch.stack([tf(im) for im in images[i:i + 64]]).to(device)).cpu()
                      for i in range(0, len(images), 64)])


def generate_for(model, tokenizer, prompts, *, steps, guidance_scale, scheduler, seed, batch_size,
                 guidance_below=1.0):
    generator = torch.Generator().manual_seed(seed)
    images = []
    for i in range(0, len(prompts), batch_size):
        images += generate_images(model, tokenizer, prompts[i:i + batch_size], steps=steps,
                                  guidance_scale=guidance_scale, scheduler=scheduler, generator=generator,
                                  progress=False, guidance_below=guidance_below)
    return images


def evaluate_text_to_image(model, tokenizer, per_category: int = 40, steps: int = 25, guidance_scale: float = 4.0,
                           scheduler: str | None = None, seed: int = 0, batch_size: int = 32, clip=None,
                           clip_tokenizer=None, n_real: int = 500, grid: str | None = None,
                           detector_images: int = 300, guidance_below: float = 1.0) -> dict:
    """The compositional report (and CLIP score / FID when a `clip` model is given); `guidance_below` < 1
    applies the guidance only at the lower-noise steps (`lingvis.diffusion.sampling.sample_latents`)."""
    size = model.image_size
    t0 = time.perf_counter()
    check = _validated(detector_images, size, seed)
    if check["scene_accuracy"] < DETECTOR_MIN_ACCURACY:
        raise RuntimeError(f"the shapes detector is only {check['scene_accuracy']:.3f} accurate on ground-truth "
                           f"{size}px renders (needs >= {DETECTOR_MIN_ACCURACY}); use a larger image size")
    items = make_items(per_category, seed)
    prompts = [it.prompt for it in items]
    images = generate_for(model, tokenizer, prompts, steps=steps, guidance_scale=guidance_scale,
                          scheduler=scheduler, seed=seed, batch_size=batch_size, guidance_below=guidance_below)
    report = {"geneval": geneval_scores(images, items), "detector": {k: v for k, v in check.items() if k != "failures"},
              "images": len(images), "image_size": size, "steps": steps, "guidance_scale": guidance_scale,
              "scheduler": scheduler or model.config.scheduler["_class_name"], "per_category": per_category,
              "guidance_below": guidance_below}
    if clip is not None:
        report["clip_score"] = clip_score(clip, clip_tokenizer, images, prompts)
        real = [render_scene(s, size) for s in make_split_scenes("test", n_real, seed)]
        report["fid_clip"] = frechet_distance(clip_features(clip, images), clip_features(clip, real))
        report["fid_real_images"] = n_real
    if grid:
        cols = min(8, per_category)  # one row per category
        rows = [im for c in CATEGORIES for im in [x for x, it in zip(images, items) if it.category == c][:cols]]
        image_grid(rows, cols=cols).save(grid)
        report["grid"] = grid
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report
