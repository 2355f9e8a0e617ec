"""VQA / fusion image preprocessing (ViltImageProcessor rules), padded image batches with pixel masks,
and the VQA dataset (images decoded once and cached: many questions share an image)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

from .images import BICUBIC, load_image, normalize, to_rgb, to_tensor
from .vqa import VQAExample
from .vqa_answers import AnswerVocab

MAX_SHORT, MAX_LONG = 800, 1333  # ViLT keeps the aspect ratio with the long side <= 1333/800 * short


@dataclass
class FusionImageTransform:
    """PIL -> (3, h, w): shortest side to `size` (long side capped at 1333/800 * size), both sides floored
    to a multiple of `stride`, rescaled to [0, 1] and normalised with `mean`/`std` (as ViltImageProcessor)."""

    size: int
    stride: int
    mean: Sequence[float] = (0.5, 0.5, 0.5)
    std: Sequence[float] = (0.5, 0.5, 0.5)

    @classmethod
    def for_model(cls, config) -> "FusionImageTransform":
        return cls(config.image_size, config.stride, tuple(config.image_mean), tuple(config.image_std))

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        short, longest = self.size, int(MAX_LONG / MAX_SHORT * self.size)
        if height < width:
            h, w = float(short), width * short / height
        else:
            h, w = height * short / width, float(short)
        if max(h, w) > longest:
            scale = longest / max(h, w)
            h, w = h * scale, w * scale
        h, w = int(h + 0.5) // self.stride * self.stride, int(w + 0.5) // self.stride * self.stride
        return max(w, self.stride), max(h, self.stride)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = to_rgb(img)
        size = self.target_size(*img.size)
        if size != img.size:
            img = img.resize(size, BICUBIC)
        return normalize(to_tensor(img), self.mean, self.std)  # (3, h, w)


def pad_images(images: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (3, h, w) images at the bottom/right to the batch maximum -> pixels (B, 3, H, W) and
    pixel_mask (B, H, W) with 1 on real pixels."""
    H, W = max(t.shape[-2] for t in images), max(t.shape[-1] for t in images)
    pixels = images[0].new_zeros(len(images), images[0].shape[0], H, W)
    mask = torch.zeros(len(images), H, W, dtype=torch.long)
    for i, t in enumerate(images):
        pixels[i, :, :t.shape[-2], :t.shape[-1]] = t
        mask[i, :t.shape[-2], :t.shape[-1]] = 1
    return pixels, mask


class ImageCache:
    """Decoded + transformed images keyed by path (the transform is deterministic)."""

    def __init__(self, transform: Callable[[Image.Image], torch.Tensor], enabled: bool = True):
        self.transform, self.enabled = transform, enabled
        self._store: dict[Path, torch.Tensor] = {}

    def __call__(self, path: Path) -> torch.Tensor:
        return self.get(path, lambda: load_image(path))

    def get(self, key, load) -> torch.Tensor:
        """The transformed image for `key`, decoding it with `load()` (-> PIL) on a miss."""
        if key in self._store:
            return self._store[key]
        t = self.transform(load())
        if self.enabled:
            self._store[key] = t
        return t


class VQADataset(Dataset):
    """Items {"pixel_values", "question", "answers", "question_id", "question_type", "target"} where
    target is the (A,) soft score vector when a vocabulary is given."""

    def __init__(self, examples: list[VQAExample], transform: Callable[[Image.Image], torch.Tensor],
                 vocab: AnswerVocab | None = None, cache: bool = True):
        self.examples, self.vocab = examples, vocab
        self.images = ImageCache(transform, cache)
        self.targets = [vocab.soft_target(e.answers) for e in examples] if vocab is not None else None

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        e = self.examples[i]
        item = {"pixel_values": self.images(e.image), "question": e.question, "answers": e.answers,
                "question_id": e.question_id, "question_type": e.question_type or "all"}
        if self.targets is not None:
            item["target"] = self.targets[i]
        return item


class CaptionPairs(Dataset):
    """Image-caption pairs for fusion pretraining: {"pixel_values", "text", "image_key", "eval"} from
    `ImageTextRecord`s (any format `lingvis.data.image_text.read_records` reads)."""

    def __init__(self, records: list, transform: FusionImageTransform, eval: bool = False, cache: bool = True):
        self.records, self.eval = records, eval
        self.images = ImageCache(transform, cache)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        rec = self.records[i]
        key = str(rec.image_path) if rec.image_path is not None else rec.key  # tar members: their key
        return {"pixel_values": self.images.get(key, rec.load), "text": rec.text, "image_key": key,
                "eval": self.eval}
