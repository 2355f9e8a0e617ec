"""A video with what is known about it: a class label and/or captions."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class VideoRecord:
    path: Path                       # a video file or a folder of frame images
    label: str | None = None         # class name (classification data)
    captions: list[str] = field(default_factory=list)
    video_id: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.video_id or str(self.path)
