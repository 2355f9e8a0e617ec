"""A Dataset of video clips with their labels and captions."""
from __future__ import annotations

import random
from typing import Sequence

import torch
from torch.utils.data import Dataset

from ..data.images import ImageError
import numpy as np

from .clips import load_clips
from .decode import DEFAULT_FOLDER_FPS, VideoInfo, open_video
from .errors import VideoError
from .records import VideoRecord
from .sampling import SamplingSpec, sample_indices
from .transforms import VideoTransform

# what a bad video raises while loading; wrap the dataset in `data.images.SafeDataset(ds, errors=VIDEO_ERRORS)`
# to skip (and count) such videos without losing the rest of the batch
VIDEO_ERRORS = (VideoError, ImageError, OSError)


class VideoClips(Dataset):
    """One item per video: {"video": (T, C, H, W) float ((K, T, C, H, W) when spec.clips > 1), "path": str,
    "label": class index (when `labels` is given), "text": one caption and "captions": all (when the
    record has captions)}.

    Training (`train=True`) draws segment offsets / clip starts and, with `random_caption`, the caption
    from a generator seeded with `seed`; evaluation is deterministic (centred clips, first caption).
    `cache_frames=True` keeps every decoded frame in memory and decodes only frames not seen before: for
    small datasets of short clips (e.g. the synthetic motion set), where decoding would dominate training."""

    def __init__(self, records: Sequence[VideoRecord], spec: SamplingSpec, transform: VideoTransform,
                 labels: Sequence[str] | None = None, train: bool = False, random_caption: bool | None = None,
                 seed: int = 0, folder_fps: float = DEFAULT_FOLDER_FPS, cache_frames: bool = False):
        if not records:
            raise ValueError("no videos in the dataset")
        self.records, self.spec, self.transform, self.train = list(records), spec, transform, train
        self.label_index = {name: i for i, name in enumerate(labels)} if labels is not None else None
        if self.label_index is not None:
            unknown = sorted({r.label for r in self.records if r.label not in self.label_index}, key=str)
            if unknown:
                raise ValueError(f"videos with labels outside the model's classes: {unknown[:5]} "
                                 f"(classes: {list(labels)[:10]})")
        self.random_caption = train if random_caption is None else random_caption
        self.rng = random.Random(seed)
        self.folder_fps = folder_fps
        self._cache: dict[int, tuple[VideoInfo, dict[int, np.ndarray]]] | None = {} if cache_frames else None

    def __len__(self) -> int:
        return len(self.records)

    def reseed(self, seed: int) -> None:
        """Give each DataLoader worker its own draws."""
        self.rng = random.Random(seed)
        self.transform.reseed(seed)

    def _cached_clips(self, i: int, r: VideoRecord) -> torch.Tensor:
        info, store = self._cache.get(i, (None, {}))
        video = None
        try:
            if info is None:
                video = open_video(r.path, self.folder_fps)
                info = video.info
            clips = sample_indices(self.spec, info.num_frames, info.fps, self.train, self.rng, name=info.path)
            missing = sorted({j for c in clips for j in c} - store.keys())
            if missing:
                video = video or open_video(r.path, self.folder_fps)
                store.update(zip(missing, video.get(missing)))
        finally:
            if video is not None:
                video.close()
        self._cache[i] = (info, store)
        return torch.stack([self.transform([store[j] for j in c]) for c in clips])  # (K, T, C, H, W)

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        if self._cache is not None:
            clips = self._cached_clips(i, r)
        else:
            clips = load_clips(r.path, self.spec, self.transform, self.train, self.rng, self.folder_fps)
        item: dict = {"video": clips[0] if self.spec.clips == 1 else clips, "path": str(r.path)}
        if self.label_index is not None:
            item["label"] = self.label_index[r.label]
        if r.captions:
            item["text"] = self.rng.choice(r.captions) if self.random_caption else r.captions[0]
            item["captions"] = list(r.captions)
        return item


def stack_videos(samples: Sequence[dict], key: str = "video") -> torch.Tensor:
    """(B, T, C, H, W) (or (B, K, T, C, H, W)) from samples, naming the first sample whose shape differs."""
    shape = samples[0][key].shape
    for s in samples:
        if s[key].shape != shape:
            raise ValueError(f"{s.get('path', '?')}: clip shape {tuple(s[key].shape)} differs from "
                             f"{tuple(shape)} of {samples[0].get('path', '?')}")
    return torch.stack([s[key] for s in samples])
