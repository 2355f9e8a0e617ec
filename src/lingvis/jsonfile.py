"""Reading JSON and JSON-lines files with errors that name them: the file, the line and column of a syntax error,
and the type expected. A leaf module (json and pathlib only), so every layer may use it."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def read_json(path: str | Path, error: type[Exception] = ValueError, what: str = "JSON file",
              expect: type | None = None) -> Any:
    """Parse `path`. A missing file raises FileNotFoundError naming `what`; a syntax error raises `error` as
    "PATH:LINE:COLUMN: invalid JSON (why)"; with `expect` (dict or list) another top-level type raises `error`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise error(f"{path}:{e.lineno}:{e.colno}: invalid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if expect is not None and not isinstance(data, expect):
        names = {dict: "a JSON object", list: "a JSON list"}
        raise error(f"{path}: expected {names.get(expect, expect.__name__)}, got {type(data).__name__}")
    return data


def iter_jsonl(path: str | Path, error: type[Exception] = ValueError, text: str | None = None,
               what: str = "JSONL file") -> Iterator[tuple[int, dict]]:
    """(line number, record) for each non-blank line of a JSON-lines file (or of `text`, its contents already
    read). A missing file raises FileNotFoundError naming `what`; a line that is not JSON raises `error` as
    "PATH:LINE: invalid JSON (why at column C)"; a line that is not an object raises `error` naming its type."""
    path = Path(path)
    if text is None:
        if not path.is_file():
            raise FileNotFoundError(f"{what} not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise error(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 may sit inside a JSON string
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise error(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        yield lineno, record
