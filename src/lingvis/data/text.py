"""Read training text from the formats users bring, and split it into train/validation.

Accepted inputs:
  * a single text file (any suffix except the JSONL ones) -> one document;
  * a JSONL file (``.jsonl`` / ``.ndjson``) -> one document per line, taken from ``text_field``;
  * a folder -> every ``.txt`` / ``.md`` / ``.jsonl`` / ``.ndjson`` file below it, recursively,
    in sorted relative-path order.

Text is decoded as strict UTF-8 (a leading BOM is dropped) and line endings are normalised to ``\\n``.
Documents that are empty or whitespace-only are dropped; a corpus left with nothing is an error.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from lingvis.jsonfile import iter_jsonl

TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class CorpusError(ValueError):
    """Bad or empty training text; the message names the file (and line or byte offset)."""


@dataclass(frozen=True)
class Document:
    """One training document and where it came from (``file`` or ``file:line``)."""

    text: str
    source: str


def read_text_file(path: str | os.PathLike) -> str:
    """Read a file as strict UTF-8 with ``\\n`` line endings; bad bytes raise naming file and offset."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = data[err.start : err.end].hex(" ")
        raise CorpusError(
            f"{path}: not valid UTF-8 at byte offset {err.start} (bytes: {bad}); "
            "re-encode the file as UTF-8"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_jsonl(path: Path, text_field: str) -> list[Document]:
    docs = []
    for lineno, record in iter_jsonl(path, CorpusError, read_text_file(path)):
        if text_field not in record:
            keys = ", ".join(sorted(record)) or "none"
            raise CorpusError(f"{path}:{lineno}: missing field {text_field!r} (keys present: {keys})")
        value = record[text_field]
        if not isinstance(value, str):
            raise CorpusError(
                f"{path}:{lineno}: field {text_field!r} must be a string, got {type(value).__name__}"
            )
        docs.append(Document(value, f"{path}:{lineno}"))
    return docs


def _read_file(path: Path, text_field: str) -> list[Document]:
    if path.suffix.lower() in JSONL_SUFFIXES:
        return _read_jsonl(path, text_field)
    return [Document(read_text_file(path), str(path))]


def _folder_files(folder: Path) -> list[Path]:
    suffixes = TEXT_SUFFIXES + JSONL_SUFFIXES
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def read_documents(path: str | os.PathLike, text_field: str = "text") -> list[Document]:
    """Read every non-empty document from a text file, a JSONL file or a folder of them."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"training text not found: {path}")
    files = _folder_files(path) if path.is_dir() else [path]
    docs = [doc for file in files for doc in _read_file(file, text_field)]
    kept = [doc for doc in docs if doc.text.strip()]
    if not kept:
        if path.is_dir() and not files:
            found = "no " + "/".join(TEXT_SUFFIXES + JSONL_SUFFIXES) + " files"
        else:
            found = f"{len(files)} file(s), {len(docs)} document(s), all empty"
        raise CorpusError(f"empty corpus: {path} ({found})")
    return kept


def read_texts(path: str | os.PathLike, text_field: str = "text") -> list[str]:
    """Like :func:`read_documents` but returns only the texts."""
    return [doc.text for doc in read_documents(path, text_field)]


def train_val_split(
    texts: Sequence[str] | str, val_fraction: float = 0.1, seed: int | None = 0
) -> tuple[list[str], list[str]]:
    """Deterministically split texts into (train, val).

    Several documents: a seeded choice of ``round(n * val_fraction)`` whole documents (at least one,
    at most n - 1) goes to validation; both sides keep the original order. ``seed=None`` takes the
    last documents instead. One document (or a plain string): its tail ``val_fraction`` of characters
    is the validation text.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise CorpusError("cannot split an empty list of texts")
    if len(texts) == 1:
        return _split_tail(texts[0], val_fraction)
    n = len(texts)
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    order = list(range(n))
    if seed is not None:
        random.Random(seed).shuffle(order)
    val_idx = set(order[n - n_val :])
    train = [t for i, t in enumerate(texts) if i not in val_idx]
    val = [t for i, t in enumerate(texts) if i in val_idx]
    return train, val


def _split_tail(text: str, val_fraction: float) -> tuple[list[str], list[str]]:
    cut = int(len(text) * (1.0 - val_fraction))
    if cut <= 0 or cut >= len(text):
        raise CorpusError(
            f"text is too short to split ({len(text)} characters, val_fraction={val_fraction})"
        )
    return [text[:cut]], [text[cut:]]
