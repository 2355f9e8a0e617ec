"""Held-out evaluation of a CLIP trained on the shapes data: zero-shot colour x shape accuracy on
single-object scenes, and text -> image retrieval on image/caption pairs."""
from __future__ import annotations

from pathlib import Path

import torch

from ..data.images import load_image
from ..data.shapes import read_scenes_jsonl, shapes_class_names
from ..eval.retrieval import retrieval_recall
from ..zeroshot import embed_images, embed_texts, zero_shot_accuracy

# prompt ensemble in the style of the training captions; "{}" is "<colour> <shape>"
SHAPES_TEMPLATES = ("a single {} on a white background", "a small {}", "a large {}")


def single_object_set(folder: str | Path, split: str = "test") -> tuple[list, list[int]]:
    """Images and class indices (into `shapes_class_names()`) of the split's single-object scenes."""
    folder = Path(folder)
    recs = [r for r in read_scenes_jsonl(folder / f"scenes_{split}.jsonl") if r.get("class_index") is not None]
    if not recs:
        raise ValueError(f"{folder}: split {split!r} has no single-object scenes")
    return [load_image(folder / "images" / r["file_name"]) for r in recs], [r["class_index"] for r in recs]


def shapes_zero_shot(model, tokenizer, folder: str | Path, split: str = "test") -> dict:
    images, targets = single_object_set(folder, split)
    res = zero_shot_accuracy(model, tokenizer, images, targets, shapes_class_names(), SHAPES_TEMPLATES)
    return {**res, "images": len(images), "classes": len(shapes_class_names())}


def shapes_retrieval(model, tokenizer, folder: str | Path, split: str = "test", n: int = 500,
                     caption: int = 0) -> dict:
    """t2i / i2t recall over the first `n` images of a split, one caption per image (index `caption`).

    `t2i_R@1` is strict (only the paired image counts). The generator gives identical captions to
    different images (e.g. two single-object scenes of a small red circle), which caps the strict score;
    `t2i_R@1_any` counts an image as correct when the query is one of its own captions too."""
    folder = Path(folder)
    recs = read_scenes_jsonl(folder / f"scenes_{split}.jsonl")[:n]
    images = [load_image(folder / "images" / r["file_name"]) for r in recs]
    texts = [r["captions"][min(caption, len(r["captions"]) - 1)] for r in recs]
    sim = embed_images(model, images) @ embed_texts(model, tokenizer, texts).t()  # (I, T)
    out = retrieval_recall(sim, list(range(len(texts))), ks=(1, 5, 10))
    relevant = torch.tensor([[t in r["captions"] for t in texts] for r in recs])  # (I, T)
    best = sim.argmax(dim=0)  # (T,) top image per text
    out["t2i_R@1_any"] = relevant[best, torch.arange(len(texts))].float().mean().item()
    out["distinct_captions"] = len(set(texts))
    out["pairs"] = len(texts)
    return out
