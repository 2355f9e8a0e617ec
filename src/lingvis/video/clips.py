"""One call from a path and a sampling spec to model-ready tensors: (T, C, H, W) for one clip,
(K, T, C, H, W) for several. The frames of every clip are decoded in one pass over the file."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from .decode import DEFAULT_FOLDER_FPS, VideoInfo, open_video
from .sampling import SamplingSpec, sample_indices
from .transforms import VideoTransform


def sample_frames(path: str | Path, spec: SamplingSpec, train: bool = False, rng: random.Random | None = None,
                  folder_fps: float = DEFAULT_FOLDER_FPS) -> tuple[VideoInfo, list[list[np.ndarray]]]:
    """(info, frames per clip): `spec.clips` lists of `spec.num_frames` (H, W, 3) uint8 frames."""
    with open_video(path, folder_fps) as video:
        info = video.info
        clips = sample_indices(spec, info.num_frames, info.fps, train, rng, name=info.path)
        flat = video.get([i for clip in clips for i in clip])
    T = spec.num_frames
    return info, [flat[k * T:(k + 1) * T] for k in range(len(clips))]


def load_clips(path: str | Path, spec: SamplingSpec | None = None, transform: VideoTransform | None = None,
               train: bool = False, rng: random.Random | None = None,
               folder_fps: float = DEFAULT_FOLDER_FPS) -> torch.Tensor:
    """(K, T, C, H, W) float tensor of `spec.clips` clips; `transform` defaults to `VideoTransform()` (224px,
    CLIP statistics, eval)."""
    spec = spec or SamplingSpec()
    transform = transform or VideoTransform()
    _, clips = sample_frames(path, spec, train, rng, folder_fps)
    return torch.stack([transform(frames) for frames in clips])  # (K, T, C, H, W)


def load_video(path: str | Path, spec: SamplingSpec | None = None, transform: VideoTransform | None = None,
               train: bool = False, rng: random.Random | None = None,
               folder_fps: float = DEFAULT_FOLDER_FPS) -> torch.Tensor:
    """(T, C, H, W) float tensor of one clip (see `load_clips`)."""
    spec = spec or SamplingSpec()
    if spec.clips != 1:
        raise ValueError(f"load_video reads one clip; the spec asks for {spec.clips} (use load_clips)")
    return load_clips(path, spec, transform, train, rng, folder_fps)[0]


def frame_images(path: str | Path, num_frames: int = 4, folder_fps: float = DEFAULT_FOLDER_FPS) -> list:
    """`num_frames` PIL images from the centres of equal segments of the video (a short video repeats its
    last frame): how an image-chat model sees a video, one image per frame, in time order."""
    from PIL import Image

    spec = SamplingSpec(num_frames=num_frames, mode="segments", short="repeat")
    _, clips = sample_frames(path, spec, folder_fps=folder_fps)
    return [Image.fromarray(f) for f in clips[0]]
