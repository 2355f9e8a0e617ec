"""Webdataset `.tar` shards read with the standard library: brace/glob expansion and member indexing.

Samples are members sharing a key (the member name up to the first '.' of its basename), e.g.
`000123.jpg` + `000123.txt`. Images are read later straight from the shard by byte offset.
"""

from __future__ import annotations

import glob
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lingvis.data.image_text_records import ImageTextFormatError, ImageTextRecord, TarRef

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(\d+)\.\.(\d+)$")


def expand_braces(pattern: str) -> list[str]:
    """'a-{000..002}.tar' -> ['a-000.tar', 'a-001.tar', 'a-002.tar']; '{x,y}' lists alternatives."""
    match = _BRACE.search(pattern)
    if match is None:
        return [pattern]
    body = match.group(1)
    rng = _RANGE.match(body)
    if rng:
        lo, hi = rng.group(1), rng.group(2)
        width = len(lo) if lo.startswith("0") or len(lo) == len(hi) else 0
        if int(hi) < int(lo):
            raise ValueError(f"shard pattern {pattern!r}: empty range {body!r}")
        options = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    else:
        options = body.split(",")
    head, tail = pattern[: match.start()], pattern[match.end():]
    return [s for opt in options for s in expand_braces(head + opt + tail)]


def expand_shards(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """Shard paths from a path, a glob, a brace pattern or a list of those; every entry must match."""
    specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
    shards: list[Path] = []
    for s in specs:
        for pattern in expand_braces(str(s)):
            if any(ch in pattern for ch in "*?["):
                hits = sorted(glob.glob(pattern))
                if not hits:
                    raise FileNotFoundError(f"no webdataset shards match {pattern!r}")
                shards += [Path(h) for h in hits]
            elif not Path(pattern).is_file():
                raise FileNotFoundError(f"webdataset shard not found: {pattern}")
            else:
                shards.append(Path(pattern))
    if not shards:
        raise FileNotFoundError(f"no webdataset shards in {spec!r}")
    return shards


def split_member_name(name: str) -> tuple[str, str]:
    """'dir/000123.seg.jpg' -> ('dir/000123', 'seg.jpg') as webdataset does."""
    directory, _, base = name.rpartition("/")
    key, dot, ext = base.partition(".")
    if not dot:
        return name, ""
    return (f"{directory}/{key}" if directory else key), ext.lower()


@dataclass
class _Group:
    image: tarfile.TarInfo | None = None
    text: str | None = None
    members: tuple[str, ...] = ()


def _index_groups(shard: Path, text_ext: str, image_exts: Sequence[str]) -> dict[str, _Group]:
    groups: dict[str, _Group] = {}
    try:
        tar = tarfile.open(shard, "r:")  # uncompressed only: images are read back by offset
    except (tarfile.TarError, OSError) as e:
        raise ImageTextFormatError(f"{shard}: not a readable uncompressed tar shard ({e})") from e
    with tar:
        for m in tar:
            if not m.isfile():
                continue
            key, ext = split_member_name(m.name)
            g = groups.setdefault(key, _Group())
            g.members += (m.name,)
            if ext == text_ext:
                if g.text is not None:
                    raise ImageTextFormatError(f"{shard}: duplicate text member {m.name}")
                raw = tar.extractfile(m).read()
                try:
                    g.text = raw.decode("utf-8").strip()
                except UnicodeDecodeError as e:
                    raise ImageTextFormatError(f"{shard}: member {m.name} is not UTF-8 text") from e
            elif ext in image_exts:
                if g.image is not None:
                    raise ImageTextFormatError(f"{shard}: two images for key {key!r}: "
                                               f"{g.image.name} and {m.name}")
                g.image = m
    return groups


def read_webdataset(
    spec: str | Path | Sequence[str | Path], text_ext: str = "txt",
    image_exts: Sequence[str] = IMAGE_EXTS, on_incomplete: str = "error",
) -> tuple[list[ImageTextRecord], int]:
    """Records of every (image, text) sample in the shards, and how many incomplete ones were skipped."""
    if on_incomplete not in ("error", "skip"):
        raise ValueError(f"on_incomplete must be 'error' or 'skip', got {on_incomplete!r}")
    records: list[ImageTextRecord] = []
    skipped = 0
    for shard in expand_shards(spec):
        for key, g in _index_groups(shard, text_ext, tuple(image_exts)).items():
            if g.image is None or g.text is None:
                missing = "image (" + "/".join(image_exts) + ")" if g.image is None else f".{text_ext} text"
                if on_incomplete == "error":
                    raise ImageTextFormatError(f"{shard}: sample {key!r} (members {', '.join(g.members)}) "
                                               f"has no {missing}")
                skipped += 1
                continue
            ref = TarRef(shard, g.image.name, g.image.offset_data, g.image.size)
            records.append(ImageTextRecord(text=g.text, key=f"{shard.name}/{key}", tar=ref))
    return records, skipped
