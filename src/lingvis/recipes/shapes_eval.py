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


def distinct_pairs(records: list[dict], n: int) -> tuple[list[tuple[dict, str]], int]:
    """Up to `n` (scene, caption) pairs whose captions are pairwise distinct: each scene in order gives its
    first caption (object list, relations, count, location) that no earlier pair took; a scene whose every
    caption is taken (e.g. a second lone small red circle) is skipped and counted. Each query then has
    exactly one image it was written for, so strict R@1 is well defined. -> (pairs, skipped scenes)"""
    taken: set[str] = set()
    pairs, skipped = [], 0
    for r in records:
        cap = next((c for c in r["captions"] if c not in taken), None)
        if cap is None:
            skipped += 1
            continue
        taken.add(cap)
        pairs.append((r, cap))
        if len(pairs) == n:
            break
    return pairs, skipped


def shapes_retrieval(model, tokenizer, folder: str | Path, split: str = "test", n: int = 500) -> dict:
    """t2i / i2t recall on `n` held-out image/caption pairs with distinct captions (`distinct_pairs`).

    `t2i_R@1` is strict (only the paired image counts); `t2i_R@1_any` also counts an image that has the
    query among its own captions (another scene the same words describe)."""
    folder = Path(folder)
    pairs, skipped = distinct_pairs(read_scenes_jsonl(folder / f"scenes_{split}.jsonl"), n)
    if not pairs:
        raise ValueError(f"{folder}: split {split!r} has no captioned scenes")
    recs, texts = [p[0] for p in pairs], [p[1] for p in pairs]
    images = [load_image(folder / "images" / r["file_name"]) for r in recs]
    sim = embed_images(model, images) @ embed_texts(model, tokenizer, texts).t()  # (I, T)
    out = retrieval_recall(sim, list(range(len(texts))), ks=(1, 5, 10))
    relevant = torch.tensor([[t in r["captions"] for t in texts] for r in recs])  # (I, T)
    best = sim.argmax(dim=0)  # (T,) top image per text
    out["t2i_R@1_any"] = relevant[best, torch.arange(len(texts))].float().mean().item()
    out["pairs"] = len(texts)
    out["scenes_skipped"] = skipped
    return out
