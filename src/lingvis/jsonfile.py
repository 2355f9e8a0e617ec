"""Reading a JSON file with errors that name it: the file, the line and column of a syntax error, and the
top-level type expected. A leaf module (json and pathlib only), so every layer may use it."""
from __future__ import annotations

import json
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
