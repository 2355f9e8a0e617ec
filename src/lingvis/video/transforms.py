"""Frames -> a normalised (T, C, H, W) float tensor, with the conventions of `lingvis.data.images`
(shortest-side resize + centre crop in evaluation, random resized crop in training, [0, 1] then
(x - mean) / std). Every frame of a clip gets the same crop box and the same flip."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..data.images import (ImageTransform, center_crop, normalize, random_resized_crop_box, resize_shortest,
                           to_rgb)


def _pil(frame) -> Image.Image:
    return to_rgb(frame) if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, dtype=np.uint8))


def _array(frame) -> np.ndarray:
    return np.asarray(frame, dtype=np.uint8) if not isinstance(frame, Image.Image) else np.asarray(to_rgb(frame))


@dataclass
class VideoTransform(ImageTransform):
    """Callable: frames (each an (H, W, 3) uint8 array or a PIL image) -> (T, 3, crop, crop) float tensor.

    The fields and checks of `ImageTransform`, applied to a clip. Eval: resize the shortest side to `size`,
    centre crop `crop`. Train: one random resized crop box (`scale`, `ratio`, drawn from frame 0) and one
    horizontal flip decision (`hflip`, off by default: a flip turns "moving left" into "moving right") for
    the whole clip, from a generator seeded with `seed`.
    """

    scale: tuple[float, float] = (0.5, 1.0)
    hflip: float = 0.0

    def _eval_frame(self, frame) -> np.ndarray:
        arr = _array(frame)
        if arr.shape[0] == arr.shape[1] == self.crop and self.size == self.crop:
            return arr  # already the model's size: no resampling
        return np.asarray(center_crop(resize_shortest(_pil(frame), self.size, self.resample), self.crop))

    def __call__(self, frames: Sequence) -> torch.Tensor:
        if len(frames) == 0:
            raise ValueError("VideoTransform got no frames")
        if self.train:
            w0, h0 = _pil(frames[0]).size
            left, top, w, h = random_resized_crop_box(w0, h0, self.scale, self.ratio, self._gen)
            flip = torch.rand(1, generator=self._gen).item() < self.hflip
            out = []
            for f in frames:
                img = _pil(f)
                sx, sy = img.size[0] / w0, img.size[1] / h0  # frames of another size: the same relative box
                box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
                img = img.resize((self.crop, self.crop), self.resample, box=box)
                out.append(np.asarray(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else img))
        else:
            out = [self._eval_frame(f) for f in frames]
        x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().div_(255.0)  # (T, 3, crop, crop)
        return normalize(x, self.mean, self.std)


def video_transform(image_config, train: bool = False, seed: int = 0) -> VideoTransform:
    """The transform that belongs to an image tower config (image_size, resize_size, image_mean, image_std)."""
    c = image_config
    return VideoTransform(size=getattr(c, "resize_size", None) or c.image_size, crop=c.image_size,
                          mean=tuple(c.image_mean), std=tuple(c.image_std), train=train, seed=seed)
