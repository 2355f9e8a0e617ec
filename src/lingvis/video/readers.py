"""Readers for the common video dataset layouts; videos are opened later, by `VideoClips`.

Classification: a class folder (root/<class>/<video file or frame folder>) or a `path,label` CSV.
Captions: MSR-VTT-style JSON (`videos[{video_id, path?}]` + `sentences[{video_id, caption}]`) and
WebVid-style CSV (`videoid,name[,page_dir]`). Video QA: a JSON list of {video_id, question, answer}.
"""
from __future__ import annotations

import csv
from collections import OrderedDict
from pathlib import Path

from ..jsonfile import read_json
from .decode import FRAME_EXTS, VIDEO_EXTS, is_frame_folder
from .records import VideoRecord


class VideoFormatError(ValueError):
    """An annotation file does not have the layout its reader expects; the message names file and row."""


def _is_video(p: Path) -> bool:
    return (p.is_file() and p.suffix.lower() in VIDEO_EXTS) or is_frame_folder(p)


def list_videos(path: str | Path) -> list[Path]:
    """Video files under `path` (recursively) and folders of frame images; `path` may be one video."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"video path not found: {root}")
    if root.is_file() or is_frame_folder(root) and not any(c.is_dir() for c in root.iterdir()):
        return [root]
    found = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix.lower() in VIDEO_EXTS:
            found.append(p)
        elif p.is_dir() and is_frame_folder(p):
            found.append(p)
    if not found:
        raise ValueError(f"{root}: no videos (extensions {VIDEO_EXTS}) or folders of frame images {FRAME_EXTS}")
    return found


def read_video_folder(root: str | Path) -> tuple[list[VideoRecord], list[str]]:
    """root/<class>/<video>: (records, sorted class names)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"video class folder not found: {root}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    records = []
    for c in classes:
        for p in sorted((root / c).iterdir()):
            if not p.name.startswith(".") and _is_video(p):
                records.append(VideoRecord(path=p, label=c))
    if not records:
        raise ValueError(f"{root}: no videos in class subfolders (expected root/<class>/<video>)")
    return records, sorted({r.label for r in records})


def _resolve(base: Path, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else base / p


def read_video_csv(path: str | Path, video_root: str | Path | None = None) -> tuple[list[VideoRecord], list[str]]:
    """A `path,label` CSV (header optional); relative paths are under `video_root`, else the CSV's folder."""
    path = Path(path)
    base = Path(video_root) if video_root else path.parent
    rows = _csv_rows(path)
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
        first = 2
    else:
        first = 1
    records = []
    for n, row in enumerate(rows, first):
        if not row or not any(c.strip() for c in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise VideoFormatError(f"{path}:{n}: expected 'path,label', got {row!r}")
        records.append(VideoRecord(path=_resolve(base, row[0].strip()), label=row[1].strip()))
    if not records:
        raise VideoFormatError(f"{path}: no 'path,label' rows")
    return records, sorted({r.label for r in records})


def _csv_rows(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.reader(f))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"annotation file not found: {path}") from e
    except (UnicodeDecodeError, csv.Error) as e:
        raise VideoFormatError(f"{path}: not a readable UTF-8 CSV: {e}") from e


def read_labelled_videos(path: str | Path, video_root: str | Path | None = None
                         ) -> tuple[list[VideoRecord], list[str]]:
    """A class folder or a `path,label` CSV."""
    p = Path(path)
    if p.is_dir():
        return read_video_folder(p)
    if p.suffix.lower() in (".csv", ".tsv", ".txt"):
        return read_video_csv(p, video_root)
    if not p.exists():
        raise FileNotFoundError(f"video data not found: {p}")
    raise VideoFormatError(f"{p}: expected a class folder or a 'path,label' CSV")


def _find_video(base: Path, stem: str) -> Path:
    """base/stem if it exists (a frame folder or a file with its extension), else base/stem.<ext> for the
    first video extension that exists, else base/stem.mp4 (reported when opened)."""
    p = base / stem
    if p.exists():
        return p
    for ext in VIDEO_EXTS:
        if (base / f"{stem}{ext}").exists():
            return base / f"{stem}{ext}"
    return base / f"{stem}.mp4"


def read_msrvtt(path: str | Path, video_root: str | Path | None = None) -> list[VideoRecord]:
    """MSR-VTT-style JSON: {"videos": [{"video_id", "path"?, ...}], "sentences": [{"video_id", "caption"}]}.
    A video without "path" is `<video_root>/<video_id>.<ext>` (video_root: the JSON's folder, or its
    `videos/` subfolder when that exists); records keep every caption, in file order."""
    path = Path(path)
    data = read_json(path, VideoFormatError, "annotation file")
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list) \
            or not isinstance(data.get("sentences"), list):
        raise VideoFormatError(f"{path}: MSR-VTT captions JSON needs lists 'videos' and 'sentences'")
    if video_root is not None:
        base = Path(video_root)
    else:
        base = path.parent / "videos" if (path.parent / "videos").is_dir() else path.parent
    videos: OrderedDict[str, VideoRecord] = OrderedDict()
    for k, v in enumerate(data["videos"]):
        if not isinstance(v, dict) or "video_id" not in v:
            raise VideoFormatError(f"{path}: videos[{k}] needs a 'video_id', got {v!r}")
        vid = str(v["video_id"])
        where = _resolve(path.parent if video_root is None else base, v["path"]) if v.get("path") \
            else _find_video(base, vid)
        meta = {key: val for key, val in v.items() if key not in ("video_id", "path")}
        videos[vid] = VideoRecord(path=where, label=v.get("label"), video_id=vid, meta=meta)
    for k, s in enumerate(data["sentences"]):
        if not isinstance(s, dict) or not isinstance(s.get("caption"), str) or "video_id" not in s:
            raise VideoFormatError(f"{path}: sentences[{k}] needs 'video_id' and a string 'caption'")
        vid = str(s["video_id"])
        if vid not in videos:
            raise VideoFormatError(f"{path}: sentences[{k}] refers to video_id {vid!r}, absent from 'videos'")
        videos[vid].captions.append(s["caption"].strip())
    records = [r for r in videos.values() if r.captions]
    if not records:
        raise VideoFormatError(f"{path}: no video has a caption")
    return records


def read_webvid(path: str | Path, video_root: str | Path | None = None) -> list[VideoRecord]:
    """WebVid-style CSV with columns `videoid` and `name` (the caption), optionally `page_dir`: the video is
    `<video_root>/<page_dir>/<videoid>.<ext>` when that exists, else `<video_root>/<videoid>.<ext>`."""
    path = Path(path)
    base = Path(video_root) if video_root else path.parent
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            if "videoid" not in fields or "name" not in fields:
                raise VideoFormatError(f"{path}: WebVid CSV needs columns 'videoid' and 'name', has {fields}")
            records: OrderedDict[str, VideoRecord] = OrderedDict()
            for n, row in enumerate(reader, 2):
                vid, caption = (row.get("videoid") or "").strip(), (row.get("name") or "").strip()
                if not vid or not caption:
                    raise VideoFormatError(f"{path}:{n}: empty 'videoid' or 'name'")
                if vid not in records:
                    page = (row.get("page_dir") or "").strip()
                    where = _find_video(base / page, vid) if page and (base / page).is_dir() else _find_video(base, vid)
                    meta = {k: v for k, v in row.items() if k not in ("videoid", "name") and v}
                    records[vid] = VideoRecord(path=where, video_id=vid, meta=meta)
                records[vid].captions.append(caption)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"annotation file not found: {path}") from e
    except (UnicodeDecodeError, csv.Error) as e:
        raise VideoFormatError(f"{path}: not a readable UTF-8 CSV: {e}") from e
    if not records:
        raise VideoFormatError(f"{path}: no rows")
    return list(records.values())


def read_captioned_videos(path: str | Path, video_root: str | Path | None = None) -> list[VideoRecord]:
    """MSR-VTT-style JSON or WebVid-style CSV, by extension."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        return read_msrvtt(p, video_root)
    if p.suffix.lower() in (".csv", ".tsv"):
        return read_webvid(p, video_root)
    if not p.exists():
        raise FileNotFoundError(f"caption file not found: {p}")
    raise VideoFormatError(f"{p}: expected an MSR-VTT-style .json or a WebVid-style .csv caption file")


def read_video_qa(path: str | Path, video_root: str | Path | None = None) -> list[dict]:
    """Video QA JSON (MSRVTT-QA style): a list of {"video_id", "question", "answer", "path"?, "id"?}; each item
    gets "path" resolved (as in `read_msrvtt`)."""
    path = Path(path)
    data = read_json(path, VideoFormatError, "annotation file")
    if not isinstance(data, list):
        raise VideoFormatError(f"{path}: video QA JSON must be a list of {{video_id, question, answer}}")
    base = Path(video_root) if video_root else (path.parent / "videos" if (path.parent / "videos").is_dir()
                                               else path.parent)
    out = []
    for k, q in enumerate(data):
        if not isinstance(q, dict) or "video_id" not in q or not isinstance(q.get("question"), str) \
                or not isinstance(q.get("answer"), str):
            raise VideoFormatError(f"{path}: item {k} needs 'video_id' and string 'question' and 'answer'")
        where = _resolve(path.parent if video_root is None else base, q["path"]) if q.get("path") \
            else _find_video(base, str(q["video_id"]))
        out.append({**q, "id": q.get("id", k), "video_id": str(q["video_id"]), "path": where})
    return out
