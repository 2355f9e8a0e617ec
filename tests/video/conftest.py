"""Small videos written with PyAV for the video tests (frame i is a flat grey of level 2 i, so a frame's
mean tells its index)."""
from __future__ import annotations

import numpy as np
import pytest


def grey_frames(n: int, size: int = 32, step: int = 2):
    for i in range(n):
        yield np.full((size, size, 3), (i * step) % 256, np.uint8)


@pytest.fixture(scope="session")
def videos(tmp_path_factory):
    """{name: path}: 100-frame grey ramps at 10 fps in four containers (keyframe every 20 frames)."""
    pytest.importorskip("av")
    from lingvis.video.write import write_video

    root = tmp_path_factory.mktemp("videos")
    return {ext: write_video(root / f"ramp{ext}", grey_frames(100), fps=10, keyframe_interval=20)
            for ext in (".mp4", ".webm", ".avi", ".mkv", ".ts")}
