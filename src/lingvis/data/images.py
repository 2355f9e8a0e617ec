"""Image loading and preprocessing with Pillow and torch only (no torchvision).

`preprocess_clip` reproduces transformers' `CLIPImageProcessor` (shortest-edge bicubic resize,
floor-offset center crop, rescale 1/255, normalise with the OpenAI CLIP statistics).
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BICUBIC = Image.Resampling.BICUBIC
BILINEAR = Image.Resampling.BILINEAR
# Our own decompression-bomb limit (the same default as Pillow's warning threshold). Pillow still
# refuses images above 2 * PIL.Image.MAX_IMAGE_PIXELS on its own; raise that global for larger limits.
DEFAULT_MAX_PIXELS = 89_478_485


class ImageError(ValueError):
    """An image file is missing, unreadable, truncated or too large; the message names the file."""


def _check_pixels(path: str, size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"{path}: image is {width}x{height} = {width * height} pixels, above max_pixels="
            f"{max_pixels} (possible decompression bomb); raise max_pixels to load it"
        )


def _open(source: Any, name: str, max_pixels: int | None) -> Image.Image:
    """Decode `source` (a path or file object) to upright RGB; errors name `name`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:  # lazy: only the header is read here
                _check_pixels(name, im.size, max_pixels)
                im.load()
                return to_rgb(ImageOps.exif_transpose(im))
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"{name}: {e}") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"cannot read image {name}: {type(e).__name__}: {e}") from e


def load_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image file as an upright RGB `PIL.Image` (EXIF orientation applied, alpha on white)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image file not found: {path}")
    return _open(path, str(path), max_pixels)


def load_image_bytes(data: bytes, name: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Like `load_image` for in-memory bytes; `name` (e.g. a tar member) is used in error messages."""
    return _open(io.BytesIO(data), name, max_pixels)


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB: transparency is composited on white, 16-bit grey scaled to 8 bits."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.int64)
        top = 65535 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255
        grey = np.clip(arr * 255 // top, 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode == "P" and "transparency" in im.info
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV, F


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if len(size) != 2:
        raise ValueError(f"size must be an int or (height, width), got {size!r}")
    return int(size[0]), int(size[1])


def resize_shortest(
    img: Image.Image, size: int, resample: int = BICUBIC, max_size: int | None = None
) -> Image.Image:
    """Resize so the shorter side equals `size`, keeping aspect (long side truncated like HF/torchvision)."""
    if size <= 0:
        raise ValueError(f"resize size must be positive, got {size}")
    width, height = img.size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    if (new_w, new_h) == (width, height):
        return img
    return img.resize((new_w, new_h), resample=resample)


def center_crop(img: Image.Image, size: int | Sequence[int]) -> Image.Image:
    """Crop the centre (offsets floored, as in HF); images smaller than `size` are zero-padded."""
    crop_h, crop_w = _pair(size)
    width, height = img.size
    top = (height - crop_h) // 2
    left = (width - crop_w) // 2
    return img.crop((left, top, left + crop_w, top + crop_h))


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> float tensor (C, H, W) in [0, 1]."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)  # (C, H, W)


def normalize(t: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(t - mean) / std per channel; `t` is (C, H, W) or (B, C, H, W)."""
    if t.shape[-3] != len(mean) or len(mean) != len(std):
        raise ValueError(f"tensor with {t.shape[-3]} channels, mean {len(mean)}, std {len(std)}")
    m = torch.as_tensor(mean, dtype=t.dtype, device=t.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=t.dtype, device=t.device).view(-1, 1, 1)
    return (t - m) / s


def preprocess_clip(img: Image.Image, size: int = 224) -> torch.Tensor:
    """CLIPImageProcessor-equivalent preprocessing -> (3, size, size)."""
    img = resize_shortest(to_rgb(img), size, resample=BICUBIC)
    return normalize(to_tensor(center_crop(img, size)), CLIP_MEAN, CLIP_STD)


def random_resized_crop_box(
    width: int, height: int, scale: tuple[float, float], ratio: tuple[float, float],
    gen: torch.Generator,
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box sampling -> (left, top, crop_w, crop_h)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * torch.empty(1).uniform_(scale[0], scale[1], generator=gen).item()
        aspect = math.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=gen).item())
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=gen).item())
            left = int(torch.randint(0, width - w + 1, (1,), generator=gen).item())
            return left, top, w, h
    in_ratio = width / height  # fallback: central crop clamped to the ratio range
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


@dataclass
class ImageTransform:
    """Callable PIL -> (3, crop, crop) tensor.

    Eval: resize shortest side to `size`, center crop `crop`. Train: random resized crop
    (`scale`, `ratio`) to `crop` plus horizontal flip with probability `hflip`, drawn from a
    `torch.Generator` seeded with `seed` (each DataLoader worker should call `reseed`).
    """

    size: int = 224
    crop: int | None = None
    mean: Sequence[float] = CLIP_MEAN
    std: Sequence[float] = CLIP_STD
    train: bool = False
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    seed: int = 0
    resample: int = BICUBIC
    _gen: torch.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.crop = self.size if self.crop is None else self.crop
        if self.size <= 0 or self.crop <= 0:
            raise ValueError(f"size and crop must be positive, got size={self.size} crop={self.crop}")
        if not (0 < self.scale[0] <= self.scale[1] <= 1.0):
            raise ValueError(f"scale must satisfy 0 < lo <= hi <= 1, got {self.scale}")
        if not (0 < self.ratio[0] <= self.ratio[1]):
            raise ValueError(f"ratio must satisfy 0 < lo <= hi, got {self.ratio}")
        if not 0.0 <= self.hflip <= 1.0:
            raise ValueError(f"hflip must be a probability, got {self.hflip}")
        self.reseed(self.seed)

    def reseed(self, seed: int) -> None:
        self._gen = torch.Generator().manual_seed(seed)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        img = to_rgb(img)
        if self.train:
            left, top, w, h = random_resized_crop_box(*img.size, self.scale, self.ratio, self._gen)
            img = img.resize((self.crop, self.crop), self.resample, box=(left, top, left + w, top + h))
            if torch.rand(1, generator=self._gen).item() < self.hflip:
                img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            img = center_crop(resize_shortest(img, self.size, self.resample), self.crop)
        return normalize(to_tensor(img), self.mean, self.std)  # (3, crop, crop)


def collate_images(samples: Sequence[Any]) -> Any:
    """Batch tensors (stacked to (B, ...)) or dicts of fields; `None` samples are dropped.

    Dict fields: tensors are stacked, ints/floats become tensors, anything else becomes a list.
    """
    samples = [s for s in samples if s is not None]
    if not samples:
        raise ValueError("collate_images: every sample in the batch is None (all failed to load)")
    first = samples[0]
    if isinstance(first, torch.Tensor):
        return _stack("images", samples)
    if isinstance(first, dict):
        out: dict[str, Any] = {}
        for key in first:
            try:
                values = [s[key] for s in samples]
            except KeyError as e:
                raise KeyError(f"collate_images: a sample lacks field {key!r}") from e
            if isinstance(values[0], torch.Tensor):
                out[key] = _stack(key, values)
            elif isinstance(values[0], (int, float)):
                out[key] = torch.tensor(values)
            else:
                out[key] = values
        return out
    raise TypeError(f"collate_images expects tensors or dicts, got {type(first).__name__}")


def _stack(name: str, values: Sequence[torch.Tensor]) -> torch.Tensor:
    shape = values[0].shape
    for i, v in enumerate(values):
        if v.shape != shape:
            raise ValueError(f"collate_images: field {name!r} sample {i} has shape "
                             f"{tuple(v.shape)}, sample 0 has {tuple(shape)}")
    return torch.stack(list(values))  # (B, ...)


class SkipCounter:
    """Thread-safe count of skipped samples, keeping the first `keep` reasons."""

    def __init__(self, keep: int = 20) -> None:
        self.count = 0
        self.reasons: list[str] = []
        self._keep = keep
        self._lock = threading.Lock()

    def record(self, key: Any, error: BaseException) -> None:
        with self._lock:
            self.count += 1
            if len(self.reasons) < self._keep:
                self.reasons.append(f"{key}: {error}")

    def __repr__(self) -> str:
        return f"SkipCounter(count={self.count})"


class SafeDataset(Dataset):
    """Wrap a dataset so samples that fail to load are skipped (the next index is tried) and counted.

    After `max_tries` consecutive failures a RuntimeError lists the reasons. Note that with
    DataLoader workers each worker process updates its own copy of the counter.
    """

    def __init__(
        self, dataset: Dataset, counter: SkipCounter | None = None, max_tries: int = 10,
        errors: tuple[type[BaseException], ...] = (ImageError, OSError),
    ) -> None:
        self.dataset = dataset
        self.counter = counter if counter is not None else SkipCounter()
        self.max_tries = max_tries
        self.errors = errors

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        n = len(self.dataset)
        failures: list[str] = []
        for attempt in range(min(self.max_tries, n)):
            i = (index + attempt) % n
            try:
                return self.dataset[i]
            except self.errors as e:
                self.counter.record(i, e)
                failures.append(f"[{i}] {e}")
        raise RuntimeError(f"{len(failures)} consecutive samples failed to load from index "
                           f"{index}: " + "; ".join(failures))


def safe_load(
    path: str | Path, counter: SkipCounter, loader: Callable[[Path], Image.Image] = load_image
) -> Image.Image | None:
    """Load an image, or count the failure in `counter` and return None."""
    try:
        return loader(Path(path))
    except (ImageError, OSError) as e:
        counter.record(path, e)
        return None
