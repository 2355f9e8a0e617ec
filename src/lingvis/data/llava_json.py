"""LLaVA conversation JSON (the format of LLaVA-Instruct and LLaVA-1.5's mixes): a list of
{"id", "image" (optional: a path, or a list of paths), "conversations": [{"from": "human"|"gpt", "value"}]}.
Image paths are relative to `image_root` (default: the JSON file's folder). Rows without "image" are
text-only conversations. Every row must hold one "<image>" placeholder per image."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..jsonfile import iter_jsonl, read_json
from .llava_inputs import IMAGE_TOKEN, count_mismatch, llava_messages


@dataclass
class Conversation:
    id: str
    images: list[Path]
    messages: list[dict]  # {"role": user|assistant|system, "content": str} with "<image>" placeholders


def read_llava_json(path: str | Path, image_root: str | Path | None = None) -> list[Conversation]:
    """Conversations of a LLaVA JSON (or JSONL) file, validated row by row (errors name the row and id)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LLaVA conversation file not found: {path}")
    if path.suffix == ".jsonl":
        rows = [row for _, row in iter_jsonl(path)]
    else:
        rows = read_json(path, what="LLaVA conversation file", expect=list)
    root = Path(image_root) if image_root is not None else path.parent
    out = []
    for i, row in enumerate(rows):
        where = f"{path} row {i}" + (f" (id {row.get('id')!r})" if isinstance(row, dict) and "id" in row else "")
        if not isinstance(row, dict) or not isinstance(row.get("conversations"), list):
            raise ValueError(f"{where}: expected an object with a 'conversations' list")
        image = row.get("image")
        names = [] if image is None else [image] if isinstance(image, str) else image
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"{where}: 'image' must be a path or a list of paths")
        messages = llava_messages(row["conversations"], where)
        found = sum(m["content"].count(IMAGE_TOKEN) for m in messages)
        if found != len(names):
            raise count_mismatch(found, len(names), where)
        out.append(Conversation(str(row.get("id", i)), [root / n for n in names], messages))
    if not out:
        raise ValueError(f"{path}: no conversations")
    return out
