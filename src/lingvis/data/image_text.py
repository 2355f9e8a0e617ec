"""Image-text datasets from the formats users bring, detected from the path.

`open_image_text(path)` returns an `ImageTextDataset` whose items are
`{"image": PIL image or transform(image), "text": str, "key": str, ...}` plus `"image_path"` for
file-based formats, `"label"` for class folders and COCO's `"image_id"`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from torch.utils.data import Dataset

from lingvis.data.image_text_readers import read_coco, read_csv, read_folder, read_jsonl
from lingvis.data.image_text_records import ImageTextFormatError, ImageTextRecord, TarRef
from lingvis.data.image_text_wds import expand_braces, expand_shards, read_webdataset
from lingvis.data.images import DEFAULT_MAX_PIXELS

__all__ = [
    "FORMATS", "ImageTextDataset", "ImageTextFormatError", "ImageTextRecord", "TarRef",
    "detect_format", "open_image_text", "read_records", "expand_braces", "expand_shards",
]

FORMATS = ("coco", "jsonl", "csv", "tsv", "webdataset", "folder")
_SUFFIXES = {".json": "coco", ".jsonl": "jsonl", ".csv": "csv", ".tsv": "tsv", ".tar": "webdataset"}


def detect_format(path: str | Path | Sequence[str | Path]) -> str:
    """'coco' (.json), 'jsonl', 'csv', 'tsv', 'webdataset' (.tar, glob/brace pattern or list), 'folder'."""
    if isinstance(path, (list, tuple)):
        if path and all(str(p).endswith(".tar") for p in path):
            return "webdataset"
        raise ValueError(f"a list of paths must be webdataset .tar shards, got {list(path)!r}")
    text = str(path)
    if any(ch in text for ch in "{*?["):
        if ".tar" in text:
            return "webdataset"
        raise ValueError(f"{text}: patterns are only supported for webdataset .tar shards")
    p = Path(text)
    if p.is_dir():
        return "folder"
    fmt = _SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        raise ValueError(f"{p}: cannot tell the dataset format from suffix {p.suffix!r}; expected a "
                         f"class folder or one of {sorted(_SUFFIXES)} (or pass format=)")
    if not p.exists():
        raise FileNotFoundError(f"dataset file not found: {p}")
    return fmt


def read_records(
    path: str | Path | Sequence[str | Path], format: str | None = None, **kwargs: Any
) -> tuple[list[ImageTextRecord], dict[str, Any]]:
    """Records of a dataset plus info ({'format', 'classes' for folders, 'skipped' for shards})."""
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {FORMATS}")
    info: dict[str, Any] = {"format": fmt}
    if fmt == "coco":
        records = read_coco(path, **kwargs)
    elif fmt == "jsonl":
        records = read_jsonl(path, **kwargs)
    elif fmt in ("csv", "tsv"):
        records = read_csv(path, **kwargs)
    elif fmt == "webdataset":
        records, info["skipped"] = read_webdataset(path, **kwargs)
    else:
        records, info["classes"] = read_folder(path, **kwargs)
    return records, info


class ImageTextDataset(Dataset):
    """Lazily loads each record's image (RGB, EXIF-upright) and applies `transform` if given."""

    def __init__(
        self, records: list[ImageTextRecord], transform: Callable | None = None,
        classes: list[str] | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.records = records
        self.transform = transform
        self.classes = classes
        self.max_pixels = max_pixels
        self.info = info or {}

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec = self.records[i]
        image = rec.load(self.max_pixels)
        item: dict[str, Any] = {"image": self.transform(image) if self.transform else image,
                                "text": rec.text, "key": rec.key}
        if rec.image_path is not None:
            item["image_path"] = str(rec.image_path)
        if rec.label is not None:
            item["label"] = rec.label
        if "image_id" in rec.meta:
            item["image_id"] = rec.meta["image_id"]
        return item


def open_image_text(
    path: str | Path | Sequence[str | Path], transform: Callable | None = None,
    format: str | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS, **reader_kwargs: Any,
) -> ImageTextDataset:
    """Detect the format of `path`, read its records and wrap them in an `ImageTextDataset`.

    `reader_kwargs` go to the reader: `image_root` (coco/jsonl/csv), `image_key`/`text_key` (jsonl),
    `img_key`/`caption_key`/`sep` (csv/tsv), `text_ext`/`image_exts`/`on_incomplete` (webdataset),
    `text_template` (folder).
    """
    records, info = read_records(path, format, **reader_kwargs)
    return ImageTextDataset(records, transform, info.get("classes"), max_pixels, info)
