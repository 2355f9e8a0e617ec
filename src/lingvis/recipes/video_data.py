"""Clip sampling and transforms that belong to a video model, and a seeded train/val split of videos."""
from __future__ import annotations

from collections.abc import Sequence

from ..data.holdout import holdout_split
from ..video.records import VideoRecord
from ..video.sampling import SamplingSpec
from ..video.transforms import VideoTransform, video_transform


def sampling_for(model, clips: int = 1, short: str = "error") -> SamplingSpec:
    """The sampling a video model was trained with (`num_frames`, `sampling`, `sample_fps` in its config)."""
    c = model.config
    for name in ("num_frames", "sampling", "sample_fps"):
        if not hasattr(c, name):
            raise ValueError(f"a {getattr(model, 'family', type(model).__name__)} model has no video sampling "
                             f"settings ({name}); pass a video classifier or video CLIP")
    return SamplingSpec(num_frames=c.num_frames, mode=c.sampling, fps=c.sample_fps, clips=clips, short=short)


def transform_for_video(model, train: bool = False, seed: int = 0) -> VideoTransform:
    """Eval transform (resize + centre crop), or with `train` one random resized crop per clip, with the
    statistics of the model's frame encoder."""
    cfg = getattr(model, "image_config", None)
    if cfg is None or not hasattr(cfg, "image_size"):
        raise ValueError(f"{type(model).__name__} has no image tower config (image_size, image_mean, image_std)")
    return video_transform(cfg, train, seed)


def split_videos(records: Sequence[VideoRecord], val_fraction: float, seed: int = 0,
                 max_val: int | None = None) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """Shuffle with `seed` and hold out a fraction (at least one video) for validation."""
    return holdout_split(records, val_fraction, seed, max_val, noun="videos")
