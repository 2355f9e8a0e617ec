"""Record types shared by the image-text readers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from lingvis.data.images import DEFAULT_MAX_PIXELS, load_image, load_image_bytes


class ImageTextFormatError(ValueError):
    """A malformed image-text annotation file; the message names the file and the record."""


@dataclass(frozen=True)
class TarRef:
    """Where an image member's bytes sit inside an uncompressed tar shard."""

    shard: Path
    member: str
    offset: int
    size: int

    def read(self) -> bytes:
        with open(self.shard, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.size)
        if len(data) != self.size:
            raise OSError(f"{self.shard}: member {self.member} is truncated "
                          f"({len(data)} of {self.size} bytes)")
        return data


@dataclass
class ImageTextRecord:
    """One sample: its caption and where its image lives (a file path or a tar member)."""

    text: str
    key: str
    image_path: Path | None = None
    tar: TarRef | None = None
    label: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
        if self.tar is not None:
            return load_image_bytes(self.tar.read(), f"{self.tar.shard}:{self.tar.member}", max_pixels)
        if self.image_path is None:
            raise ValueError(f"record {self.key!r} has neither an image path nor a tar member")
        return load_image(self.image_path, max_pixels)
