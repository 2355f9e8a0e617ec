"""Readers that turn image-text annotation files into `ImageTextRecord`s (images are loaded later).

Formats: COCO captions JSON, JSONL {"image", "text"}, CSV/TSV with open_clip's
`filepath`/`title` columns, and an image folder with one subfolder per class.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from lingvis.data.image_text_records import ImageTextFormatError, ImageTextRecord

from ..jsonfile import iter_jsonl, read_json

FOLDER_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def _coco_root(path: Path, image_root: str | Path | None, first_file: str | None) -> Path:
    """Explicit root, else the JSON's folder, else its `images/` subfolder (whichever holds images)."""
    if image_root is not None:
        return Path(image_root)
    here = path.parent
    if first_file is None or (here / first_file).exists():
        return here
    if (here / "images" / first_file).exists():
        return here / "images"
    return here


def _coco_images(path: Path, data: dict) -> dict[Any, str]:
    images: dict[Any, str] = {}
    for k, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise ImageTextFormatError(f"{path}: images[{k}] needs 'id' and a string 'file_name', got {im!r}")
        images[im["id"]] = im["file_name"]
    return images


def read_coco(path: str | Path, image_root: str | Path | None = None) -> list[ImageTextRecord]:
    """COCO captions: `images[{id, file_name}]` and `annotations[{id, image_id, caption}]`."""
    path = Path(path)
    data = read_json(path, ImageTextFormatError, "annotation file")
    keys = ("images", "annotations")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in keys):
        raise ImageTextFormatError(f"{path}: COCO captions JSON needs lists 'images' and 'annotations'")
    images = _coco_images(path, data)
    root = _coco_root(path, image_root, next(iter(images.values()), None))
    records = []
    for k, ann in enumerate(data["annotations"]):
        ann_id = ann.get("id", "?") if isinstance(ann, dict) else "?"
        where = f"{path}: annotation {ann_id} (annotations[{k}])"
        if not isinstance(ann, dict) or not isinstance(ann.get("caption"), str) or "image_id" not in ann:
            raise ImageTextFormatError(f"{where} needs 'image_id' and a string 'caption'")
        if ann["image_id"] not in images:
            raise ImageTextFormatError(
                f"{where} refers to image_id {ann['image_id']!r}, absent from 'images'")
        file_name = images[ann["image_id"]]
        records.append(ImageTextRecord(
            text=ann["caption"].strip(), key=file_name, image_path=root / file_name,
            meta={"image_id": ann["image_id"], "annotation_id": ann.get("id", k)}))
    return records


def read_jsonl(
    path: str | Path, image_root: str | Path | None = None, image_key: str = "image",
    text_key: str = "text",
) -> list[ImageTextRecord]:
    """One {"image": path, "text": caption} object per line.

    Relative image paths are resolved against `image_root`, else the JSONL file's folder.
    """
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    records = []
    for lineno, rec in iter_jsonl(path, ImageTextFormatError):
        for k in (image_key, text_key):
            if not isinstance(rec.get(k), str) or not rec[k].strip():
                raise ImageTextFormatError(f"{path}:{lineno}: field {k!r} missing, empty or not a string")
        records.append(ImageTextRecord(text=rec[text_key].strip(), key=rec[image_key],
                                       image_path=root / rec[image_key], meta={"line": lineno}))
    return records


def read_csv(
    path: str | Path, image_root: str | Path | None = None, img_key: str = "filepath",
    caption_key: str = "title", sep: str | None = None,
) -> list[ImageTextRecord]:
    """open_clip-style CSV/TSV with a header; `sep` defaults to tab for .tsv, comma otherwise."""
    path = Path(path)
    root = Path(image_root) if image_root is not None else path.parent
    sep = sep if sep is not None else ("\t" if path.suffix.lower() == ".tsv" else ",")
    records = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=sep)
        header = reader.fieldnames or []
        missing = [c for c in (img_key, caption_key) if c not in header]
        if missing:
            raise ImageTextFormatError(f"{path}: missing column(s) {missing}; header has {header}")
        try:
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if None in row:
                    raise ImageTextFormatError(f"{where}: more fields than the header's {len(header)}")
                image, text = row[img_key], row[caption_key]
                if not image or not (text or "").strip():
                    raise ImageTextFormatError(f"{where}: empty or missing {img_key!r}/{caption_key!r}")
                records.append(ImageTextRecord(text=text.strip(), key=image, image_path=root / image,
                                               meta={"line": reader.line_num}))
        except csv.Error as e:
            raise ImageTextFormatError(f"{path}:{reader.line_num}: {e}") from e
    return records


def read_folder(
    root: str | Path, text_template: str = "{}", extensions: tuple[str, ...] = FOLDER_IMAGE_EXTS,
) -> tuple[list[ImageTextRecord], list[str]]:
    """root/<class>/<image>: records labelled by sorted class index, text = template(class name)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ImageTextFormatError(f"{root}: expected one subfolder per class, found none")
    records = []
    for label, name in enumerate(classes):
        text = text_template.format(name.replace("_", " "))
        files = sorted(p for p in (root / name).rglob("*")
                       if p.is_file() and p.suffix.lower() in extensions and not p.name.startswith("."))
        for p in files:
            records.append(ImageTextRecord(text=text, key=str(p.relative_to(root)), image_path=p,
                                           label=label))
    if not records:
        raise ImageTextFormatError(f"{root}: no images with extensions {extensions} in {classes}")
    return records, classes
