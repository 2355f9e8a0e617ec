"""Which frames to read from a video: TSN-style uniform segments or fixed-stride clips at a given rate,
one clip (training: random placement; evaluation: centred) or several clips spread over the video.

Pure index arithmetic on a frame count: no decoding here. Frame `i` of a video is the frame shown at
`start + i / fps` (see `lingvis.video.decode`).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .errors import VideoTooShort

MODES = ("segments", "stride")
SHORT_RULES = ("error", "repeat")


@dataclass(frozen=True)
class SamplingSpec:
    """How to pick `num_frames` frames per clip.

    mode 'segments' (TSN): the video is cut into `num_frames` equal segments and one frame is taken from
    each: a random frame of the segment in training, the centre one in evaluation.
    mode 'stride': `num_frames` samples `1 / fps` seconds apart (`fps=None`: consecutive frames at the
    video's own rate); the clip starts at a random point in training and is centred in evaluation.
    clips > 1: several clips per video (evaluation averages their scores); segments use `clips` evenly
    spaced offsets inside each segment, stride uses `clips` start points spread evenly over the video.
    short: a video with fewer frames than a clip spans (segments: fewer than `num_frames` frames) either
    raises `VideoTooShort` naming the file ('error') or is padded ('repeat'): indices past the end repeat
    the last frame (stride), or frames repeat in order so each covers about num_frames / n samples (segments).
    """

    num_frames: int = 8
    mode: str = "segments"
    fps: float | None = None
    clips: int = 1
    short: str = "error"

    def __post_init__(self):
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.mode not in MODES:
            raise ValueError(f"sampling mode must be one of {MODES}, got {self.mode!r}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"sampling fps must be > 0, got {self.fps}")
        if self.fps is not None and self.mode != "stride":
            raise ValueError("sampling fps applies to mode 'stride' only (segments spread over the whole video)")
        if self.clips < 1:
            raise ValueError(f"clips must be >= 1, got {self.clips}")
        if self.short not in SHORT_RULES:
            raise ValueError(f"short must be one of {SHORT_RULES}, got {self.short!r}")

    def step(self, video_fps: float) -> float:
        """Frames of the source video between two samples of a stride clip."""
        return 1.0 if self.fps is None else video_fps / self.fps

    def span(self, video_fps: float) -> int:
        """Source frames one clip covers (stride: first to last sample inclusive; segments: num_frames)."""
        if self.mode == "segments":
            return self.num_frames
        return int(math.floor((self.num_frames - 1) * self.step(video_fps) + 1e-9)) + 1


def segment_indices(n: int, num_frames: int, offsets: list[float]) -> list[int]:
    """One index per segment: segment k covers [k n / T, (k + 1) n / T); `offsets[k]` in [0, 1) places the
    frame inside it (0.5 = centre). With n < T the segments are shorter than a frame, so frames repeat."""
    seg = n / num_frames
    return [min(n - 1, int(math.floor((k + o) * seg))) for k, o in enumerate(offsets)]


def stride_indices(n: int, num_frames: int, step: float, start: float) -> list[int]:
    """`num_frames` indices `step` frames apart from `start`, clamped to the last frame."""
    return [min(n - 1, int(math.floor(start + k * step + 0.5))) for k in range(num_frames)]  # half up


def sample_indices(spec: SamplingSpec, n: int, video_fps: float, train: bool = False,
                   rng: random.Random | None = None, name: str = "video") -> list[list[int]]:
    """Frame indices for `spec.clips` clips of a video with `n` frames at `video_fps`: (clips, num_frames).

    `rng` draws the training offsets (default: the module's random state); `name` goes into errors."""
    if n < 1:
        raise VideoTooShort(f"{name}: the video has no frames")
    rng = rng or random.Random()
    T, K = spec.num_frames, spec.clips
    if spec.mode == "segments":
        if n < T and spec.short == "error":
            raise VideoTooShort(f"{name}: {n} frames, fewer than the {T} segments asked for "
                                "(sample with short='repeat' to repeat frames)")
        if train:
            return [segment_indices(n, T, [rng.random() for _ in range(T)]) for _ in range(K)]
        return [segment_indices(n, T, [(j + 0.5) / K] * T) for j in range(K)]
    step, span = spec.step(video_fps), spec.span(video_fps)
    if span > n:
        if spec.short == "error":
            rate = f" at {spec.fps:g} fps" if spec.fps is not None else ""
            raise VideoTooShort(f"{name}: {n} frames ({n / video_fps:.2f}s at {video_fps:g} fps) but a clip of "
                                f"{T} frames{rate} spans {span} (sample with short='repeat' to pad with the "
                                "last frame)")
        return [stride_indices(n, T, step, 0.0) for _ in range(K)]
    room = n - span  # the clip may start anywhere in [0, room]
    if train:
        starts = [rng.uniform(0, room) for _ in range(K)]
    elif K == 1:
        starts = [room / 2]
    else:
        starts = [room * j / (K - 1) for j in range(K)]
    return [stride_indices(n, T, step, s) for s in starts]
