"""Write frames to a video file with PyAV (atomically: a temporary sibling renamed into place)."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from .._optional import require

# container extension -> codecs to try, in order (the first one this FFmpeg build has wins)
CODECS = {".mp4": ("libx264", "mpeg4"), ".m4v": ("libx264", "mpeg4"), ".mov": ("libx264", "mpeg4"),
          ".mkv": ("libx264", "mpeg4"), ".ts": ("libx264", "mpeg2video"), ".webm": ("libvpx-vp9", "libvpx"),
          ".avi": ("mpeg4", "mjpeg")}


def pick_codec(suffix: str) -> str:
    av = require("av", "video writing")
    choices = CODECS.get(suffix.lower())
    if choices is None:
        raise ValueError(f"cannot write video format {suffix!r}; known: {sorted(CODECS)}")
    for name in choices:
        if name in av.codecs_available:
            return name
    raise ValueError(f"this FFmpeg build has none of the codecs {choices} for {suffix} files")


def write_video(path: str | Path, frames: Iterable, fps: float = 25.0, codec: str | None = None,
                quality: int = 12, keyframe_interval: int | None = None, faststart: bool = True,
                codec_options: dict[str, str] | None = None) -> Path:
    """Encode frames ((H, W, 3) uint8 arrays or PIL images, all the same even size) into `path`.

    `quality`: x264/VP9 CRF (lower = better; the default keeps synthetic shapes nearly lossless);
    `keyframe_interval`: frames between keyframes (default: the encoder's); `faststart` puts the MP4
    index first (a cut-off file then still opens, and reports how far it got); `codec_options` go to the
    encoder as they are (e.g. {"preset": "veryfast"} for x264)."""
    av = require("av", "video writing")
    path = Path(path)
    codec = codec or pick_codec(path.suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    opts = {"movflags": "faststart"} if faststart and path.suffix.lower() in (".mp4", ".m4v", ".mov") else {}
    n = 0
    try:
        with av.open(str(tmp), "w", options=opts) as out:
            stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
            stream.pix_fmt = "yuv420p" if codec != "mjpeg" else "yuvj420p"
            codec_opts = {}
            if codec in ("libx264", "libvpx-vp9", "libvpx"):
                codec_opts["crf"] = str(quality)
            if codec in ("libvpx-vp9", "libvpx"):
                codec_opts["b"] = "0"
            if keyframe_interval:
                codec_opts["g"] = str(keyframe_interval)
            if codec == "mpeg4":
                codec_opts["qscale"] = "2"
            stream.options = {**codec_opts, **(codec_options or {})}
            for frame in frames:
                arr = np.asarray(frame.convert("RGB") if isinstance(frame, Image.Image) else frame, dtype=np.uint8)
                if arr.ndim != 3 or arr.shape[2] != 3:
                    raise ValueError(f"{path}: frame {n} has shape {arr.shape}, expected (H, W, 3)")
                if n == 0:
                    h, w = arr.shape[:2]
                    if h % 2 or w % 2:
                        raise ValueError(f"{path}: frame size {w}x{h} must be even for yuv420p")
                    stream.width, stream.height = w, h
                elif arr.shape[:2] != (stream.height, stream.width):
                    raise ValueError(f"{path}: frame {n} is {arr.shape[1]}x{arr.shape[0]}, frame 0 was "
                                     f"{stream.width}x{stream.height}")
                for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                    out.mux(packet)
                n += 1
            if n == 0:
                raise ValueError(f"{path}: no frames to write")
            for packet in stream.encode():
                out.mux(packet)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
