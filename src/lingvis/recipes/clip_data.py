"""Data for CLIP training: captioned images grouped per image, train/val split by image, image
transforms from a model's config, and a word-level tokenizer for captions."""
from __future__ import annotations

import random
from collections import OrderedDict
from pathlib import Path

import tokenizers as hf_tok
import torch
from tokenizers import normalizers, pre_tokenizers
from torch.utils.data import Dataset

from ..data.holdout import holdout_split
from ..data.image_text import ImageTextRecord, read_records
from ..data.images import DEFAULT_MAX_PIXELS, ImageTransform
from ..tokenizers import Tokenizer

CLIP_SPECIALS = {"pad": "<|pad|>", "unk": "<|unk|>", "bos": "<|startoftext|>", "eos": "<|endoftext|>"}


def train_word_tokenizer(texts: list[str], min_frequency: int = 1, max_words: int | None = None) -> Tokenizer:
    """Lower-cased word-level tokenizer (words and punctuation) with CLIP's specials: pad=0, unk=1,
    <|startoftext|>=2, <|endoftext|>=3. Unseen words map to <|unk|>."""
    counts: dict[str, int] = {}
    pre = pre_tokenizers.Whitespace()
    for t in texts:
        for word, _ in pre.pre_tokenize_str(t.lower()):
            counts[word] = counts.get(word, 0) + 1
    words = sorted((w for w, n in counts.items() if n >= min_frequency), key=lambda w: (-counts[w], w))
    if not words:
        raise ValueError("no caption text to build a tokenizer from")
    vocab = {tok: i for i, tok in enumerate(CLIP_SPECIALS.values())}
    for w in words[:max_words]:
        vocab.setdefault(w, len(vocab))
    backend = hf_tok.Tokenizer(hf_tok.models.WordLevel(vocab, unk_token=CLIP_SPECIALS["unk"]))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre
    return Tokenizer(backend, CLIP_SPECIALS)


def group_by_image(records: list[ImageTextRecord]) -> list[list[ImageTextRecord]]:
    """Records sharing one image (same file or tar member), in first-seen order."""
    groups: OrderedDict[str, list[ImageTextRecord]] = OrderedDict()
    for r in records:
        key = str(r.image_path) if r.image_path is not None else f"{r.tar.shard}:{r.tar.member}" if r.tar else r.key
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def split_groups(groups: list, val_fraction: float, seed: int = 0, max_val: int | None = None) -> tuple[list, list]:
    """Shuffle image groups with `seed` and hold out a fraction (at least one) for validation."""
    return holdout_split(groups, val_fraction, seed, max_val, noun="images")


class CaptionedImages(Dataset):
    """One item per image: {"image": transform(image), "text": a caption}. Training draws one of the
    image's captions at random each time; evaluation (`random_caption=False`) always uses the first.
    `cache=True` keeps decoded images in memory (small datasets such as shapes)."""

    def __init__(self, groups: list[list[ImageTextRecord]], transform, random_caption: bool = True, seed: int = 0,
                 cache: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS):
        if not groups:
            raise ValueError("no images in the dataset")
        self.groups, self.transform, self.random_caption = groups, transform, random_caption
        self.rng = random.Random(seed)
        self.cache: dict[int, object] | None = {} if cache else None
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.groups)

    def _pixels(self, i: int) -> torch.Tensor:
        fixed = not getattr(self.transform, "train", True)  # a deterministic transform: cache its output
        hit = self.cache.get(i) if self.cache is not None else None
        if hit is not None and fixed:
            return hit
        img = hit if hit is not None else self.groups[i][0].load(self.max_pixels)
        out = self.transform(img)  # (3, H, W)
        if self.cache is not None:
            self.cache[i] = out if fixed else img
        return out

    def __getitem__(self, i: int) -> dict:
        caps = self.groups[i]
        rec = self.rng.choice(caps) if self.random_caption else caps[0]
        return {"image": self._pixels(i), "text": rec.text}

    @property
    def pairs(self) -> list[tuple[ImageTextRecord, str]]:
        return [(g[0], g[0].text) for g in self.groups]


def image_config_of(model) -> object:
    """The image tower config (image_size, image_mean, image_std, resize_size) of a CLIP, ViT, CNN or
    image classifier."""
    cfg = getattr(model, "image_config", None)
    if cfg is None:
        cfg = model.config
    if not hasattr(cfg, "image_size"):
        raise ValueError(f"{type(model).__name__} has no image tower")
    return cfg


def transform_for(model, train: bool = False, seed: int = 0) -> ImageTransform:
    """Eval (resize shortest side + center crop) or train (random resized crop + flip) transform with the
    model's own preprocessing statistics."""
    c = image_config_of(model)
    return ImageTransform(size=c.resize_size or c.image_size, crop=c.image_size, mean=tuple(c.image_mean),
                          std=tuple(c.image_std), train=train, scale=(0.5, 1.0), seed=seed)


def load_groups(path: str | Path, **reader_kwargs) -> tuple[list[list[ImageTextRecord]], dict]:
    records, info = read_records(path, **reader_kwargs)
    if not records:
        raise ValueError(f"{path}: no image-text records")
    return group_by_image(records), info
