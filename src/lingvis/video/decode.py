"""Read chosen frames from a video file (PyAV: any container FFmpeg reads) or a folder of frame images.

Only the frames asked for are decoded and kept: for each wanted frame the reader seeks to the keyframe at
or before it (`container.seek`, which lands on a keyframe) unless the frame lies before the next keyframe
after the current position, in which case it decodes forward; frames are never all held. Frame `i` is the
first frame shown at or after `start + (i - 1/2) / fps` (exact for constant-rate video).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .._optional import require
from ..data.images import ImageError, load_image
from .errors import VideoError

VIDEO_EXTS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv", ".3gp",
              ".ts", ".gif")
FRAME_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
DEFAULT_FOLDER_FPS = 25.0  # a folder of frame images has no rate of its own


@dataclass(frozen=True)
class VideoInfo:
    """What the header (or the frame folder) says about a video."""

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str                  # FFmpeg codec name, or 'frames' for a folder of images
    frames_from: str            # where num_frames came from: header | duration | count | folder

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(f.suffix.lower() in FRAME_EXTS for f in path.iterdir() if f.is_file())


class FrameFolder:
    """A folder of frame images (sorted by name, numbers compared as numbers) read as a video at `fps`."""

    def __init__(self, path: str | Path, fps: float = DEFAULT_FOLDER_FPS):
        self.path = Path(path)
        if not self.path.is_dir():
            raise VideoError(f"frame folder not found: {self.path}")
        if not fps > 0:
            raise ValueError(f"frame folder fps must be > 0, got {fps}")
        self.files = sorted((f for f in self.path.iterdir() if f.is_file() and f.suffix.lower() in FRAME_EXTS),
                            key=_natural_key)
        if not self.files:
            raise VideoError(f"{self.path}: no frame images (extensions {FRAME_EXTS})")
        first = self._load(0)
        self.info = VideoInfo(str(self.path), len(self.files), float(fps), first.shape[1], first.shape[0],
                              "frames", "folder")

    def _load(self, i: int) -> np.ndarray:
        try:
            return np.asarray(load_image(self.files[i]))  # (H, W, 3) uint8
        except ImageError as e:
            raise VideoError(f"{self.path}: frame {i}: {e}") from e

    def get(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Frames (H, W, 3) uint8 in the order of `indices` (repeats allowed)."""
        _check_range(indices, self.info)
        cache = {i: self._load(i) for i in sorted(set(indices))}
        return [cache[i] for i in indices]

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _check_range(indices: Sequence[int], info: VideoInfo) -> None:
    bad = [i for i in indices if not 0 <= i < info.num_frames]
    if bad:
        raise VideoError(f"{info.path}: frame index {bad[0]} out of range [0, {info.num_frames})")


class AVVideo:
    """A video file opened with PyAV: `info`, `get(indices)` (seek-based sparse decoding), `iter_frames()`."""

    def __init__(self, path: str | Path):
        self.av = require("av", "video decoding")
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(f"video file not found: {self.path}")
        try:
            self.container = self.av.open(str(self.path), metadata_errors="ignore")
        except (self.av.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise VideoError(f"cannot open video {self.path}: {e}") from e
        try:
            self._setup()
        except BaseException:
            self.container.close()
            raise
        self.seeks = 0            # how many seeks `get` made (benchmarks, tests)
        self.decoded = 0          # how many frames it decoded
        self._gop: float | None = None  # largest keyframe distance seen (s): decode-forward horizon without an index

    def _setup(self) -> None:
        streams = self.container.streams
        if not streams.video:
            kinds = ", ".join(sorted({s.type for s in streams})) or "none"
            raise VideoError(f"{self.path}: no video stream (streams: {kinds})")
        self.stream = s = streams.video[0]
        rate = s.average_rate or s.guessed_rate or s.base_rate
        if not rate or rate <= 0:
            raise VideoError(f"{self.path}: the video stream has no frame rate")
        self.fps = float(rate)
        if s.time_base is None:
            raise VideoError(f"{self.path}: the video stream has no time base")
        self.time_base = Fraction(s.time_base)
        self.start = float((s.start_time or 0) * self.time_base)
        n, source = self._frame_count()
        if n < 1:
            raise VideoError(f"{self.path}: the video stream has no frames")
        ctx = s.codec_context
        self.info = VideoInfo(str(self.path), n, self.fps, int(ctx.width or 0), int(ctx.height or 0),
                              ctx.name or "unknown", source)

    def _frame_count(self) -> tuple[int, str]:
        s = self.stream
        if s.frames and s.frames > 0:
            return int(s.frames), "header"
        if s.duration:
            return int(round(float(s.duration * self.time_base) * self.fps)), "duration"
        if self.container.duration:
            return int(round(self.container.duration / self.av.time_base * self.fps)), "duration"
        n = 0  # no count and no duration in the header (some webm/mkv): count packets (no decoding)
        try:
            for packet in self.container.demux(s):
                n += packet.size > 0
            self.container.seek(0, stream=s)
        except self.av.FFmpegError as e:
            raise VideoError(f"{self.path}: reading packets failed: {e}") from e
        return n, "count"

    # ---- time <-> stream timestamps ------------------------------------------------------------------
    def _time(self, i: int) -> float:
        return self.start + i / self.fps

    def _pts(self, t: float) -> int:
        return int(t / self.time_base)

    def _frame_time(self, frame) -> float:
        if frame.pts is None:
            raise VideoError(f"{self.path}: decoded frames carry no timestamps; cannot seek in this file")
        return float(frame.pts * self.time_base)

    # ---- decoding -----------------------------------------------------------------------------------
    def _decode(self) -> Iterator:
        try:
            for frame in self.container.decode(self.stream):
                self.decoded += 1
                yield frame
        except self.av.FFmpegError as e:
            raise VideoError(f"{self.path}: decoding failed (corrupt or truncated file): {e}") from e

    def _seek(self, t: float):
        """Seek to the keyframe at or before time `t`; returns (frame iterator, first frame or None).
        Demuxers that land after `t` are asked again further back, down to the start."""
        tol = 0.5 / self.fps
        back = 0.0
        while True:
            at_start = t - back <= self.start
            offset = min(self._pts(self.start), 0) if at_start else self._pts(t - back)
            self.seeks += 1
            try:
                self.container.seek(offset, stream=self.stream, backward=True, any_frame=False)
            except self.av.FFmpegError as e:
                raise VideoError(f"{self.path}: seeking to {max(t - back, self.start):.3f}s failed: {e}") from e
            frames = self._decode()
            first = next(frames, None)
            if at_start or (first is not None and self._frame_time(first) <= t + tol):
                return frames, first  # (landing past `t` or at the end: some demuxers seek by bytes)
            back = max(1.0, 2 * back)

    def _should_seek(self, current: float, t: float) -> bool:
        """Seek when the keyframe at or before `t` lies more than one frame after the current frame (decoding
        forward would pass it); without an index, when `t` is further ahead than the largest keyframe
        distance seen so far. (Demuxers such as MPEG-TS grow the index while reading: it is trusted only
        where it reaches past `t`.)"""
        entries = getattr(self.stream, "index_entries", None) or ()  # PyAV >= 16 exposes FFmpeg's index
        if len(entries) and float(entries[len(entries) - 1].timestamp * self.time_base) >= t:
            k = entries.search_timestamp(self._pts(t), backward=True)
            return k >= 0 and float(entries[k].timestamp * self.time_base) > current + 1.5 / self.fps
        return self._gop is None or t - current > self._gop

    def get(self, indices: Sequence[int]) -> list[np.ndarray]:
        """Frames (H, W, 3) uint8 RGB in the order of `indices` (repeats allowed)."""
        _check_range(indices, self.info)
        tol = 0.5 / self.fps
        got: dict[int, np.ndarray] = {}
        frames = current = array = last_key = None
        for i in sorted(set(indices)):
            t = self._time(i)
            if current is None or self._frame_time(current) < t - tol:  # else: two indices on one frame (VFR)
                if frames is None or self._should_seek(self._frame_time(current), t):
                    frames, current = self._seek(t)
                    last_key = self._frame_time(current) if current is not None and current.key_frame else None
                array = prev = None
                while current is not None and self._frame_time(current) < t - tol:
                    prev, current = current, next(frames, None)
                    if current is not None and current.key_frame:
                        now = self._frame_time(current)
                        if last_key is not None:
                            self._gop = max(self._gop or 0.0, now - last_key)
                        last_key = now
                if current is None:
                    if prev is None or t - self._frame_time(prev) > 2.5 / self.fps:
                        self._ended_early(i, t)
                    current = prev  # the header's count (or duration) was a frame or two high
            if array is None:
                array = current.to_ndarray(format="rgb24")  # (H, W, 3)
            got[i] = array
        return [got[i] for i in indices]

    def _ended_early(self, i: int, t: float) -> None:
        raise VideoError(f"{self.path}: the stream ends before frame {i} ({t - self.start:.2f}s) although the "
                         f"{self.info.frames_from} says {self.info.num_frames} frames: the file is truncated or "
                         "its frame count is wrong")

    def iter_frames(self) -> Iterator[np.ndarray]:
        """Every frame from the start, decoded one at a time (H, W, 3) uint8."""
        if self.decoded or self.seeks:
            self.container.seek(0, stream=self.stream)
        for frame in self._decode():
            yield frame.to_ndarray(format="rgb24")

    def close(self) -> None:
        self.container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_video(path: str | Path, folder_fps: float = DEFAULT_FOLDER_FPS) -> AVVideo | FrameFolder:
    """A video file (PyAV) or a folder of frame images; use as a context manager."""
    p = Path(path)
    if p.is_dir():
        return FrameFolder(p, folder_fps)
    return AVVideo(p)


def probe(path: str | Path, folder_fps: float = DEFAULT_FOLDER_FPS) -> VideoInfo:
    with open_video(path, folder_fps) as v:
        return v.info


def read_frames(path: str | Path, indices: Sequence[int], folder_fps: float = DEFAULT_FOLDER_FPS
                ) -> list[np.ndarray]:
    """The frames at `indices` (H, W, 3) uint8, decoding only what they need."""
    with open_video(path, folder_fps) as v:
        return v.get(indices)
