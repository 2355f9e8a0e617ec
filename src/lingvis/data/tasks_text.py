"""Readers for fine-tuning data: text classification (CSV/TSV/JSONL), CoNLL tagging, SQuAD v1.1/v2.0.

Every error names the file and the line (or the JSON record path and question id)."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..jsonfile import iter_jsonl
from .text import CorpusError, read_text_file

CSV_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
DOCSTART = "-DOCSTART-"


class TaskDataError(CorpusError):
    """Bad fine-tuning data; the message names the file and line or record."""


@dataclass
class TextExample:
    """One classification example; `source` is "file:line"."""

    text: str
    text_pair: str | None = None
    label: str | None = None
    source: str = ""


# ---- classification ----------------------------------------------------------------------------------
def _field(record: dict, name: str, where: str, required: bool) -> str | None:
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise TaskDataError(f"{where}: missing or empty {name!r} (fields present: {', '.join(sorted(record))})")
        return None
    if isinstance(value, (dict, list)):
        raise TaskDataError(f"{where}: {name!r} must be a string or number, got {type(value).__name__}")
    return str(value)


def _csv_records(path: Path, delimiter: str):
    text = read_text_file(path)
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    if not reader.fieldnames:
        raise TaskDataError(f"{path}: empty file (expected a header row such as text{delimiter}label)")
    for record in reader:
        if None in record:  # more cells than header columns
            raise TaskDataError(f"{path}:{reader.line_num}: {len(reader.fieldnames) + len(record[None])} cells "
                                f"but the header has {len(reader.fieldnames)} columns {reader.fieldnames}")
        yield reader.line_num, record


def _jsonl_records(path: Path):
    text = read_text_file(path)
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise TaskDataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise TaskDataError(f"{path}: record {i}: expected an object, got {type(row).__name__}")
            yield f"record {i}", row
        return
    yield from iter_jsonl(path, TaskDataError, text)


def read_classification(path: str | Path, text_field: str = "text", pair_field: str = "text_pair",
                        label_field: str = "label", require_labels: bool = True) -> list[TextExample]:
    """Examples from CSV/TSV (header row) or JSONL/JSON; `pair_field` is optional per example."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classification data not found: {path}")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        records = _csv_records(path, CSV_SUFFIXES[suffix])
    elif suffix in JSONL_SUFFIXES:
        records = _jsonl_records(path)
    else:
        raise TaskDataError(f"{path}: unknown format {suffix!r}; use .csv, .tsv, .jsonl or .json")
    out = []
    for line, rec in records:
        where = f"{path}:{line}" if isinstance(line, int) else f"{path}: {line}"
        out.append(TextExample(_field(rec, text_field, where, True), _field(rec, pair_field, where, False),
                               _field(rec, label_field, where, require_labels), where))
    if not out:
        raise TaskDataError(f"{path}: no examples")
    return out


def check_labels(examples: list[TextExample], labels: list[str]) -> None:
    """Every example's label must be one of `labels` (e.g. those the model was trained with)."""
    known = set(labels)
    for ex in examples:
        if ex.label is None:
            raise TaskDataError(f"{ex.source}: missing label")
        if ex.label not in known:
            raise TaskDataError(f"{ex.source}: unknown label {ex.label!r}; known labels: {sorted(known)}")


# ---- CoNLL tagging ----------------------------------------------------------------------------------
@dataclass
class TaggedSentence:
    tokens: list[str]
    tags: list[str] | None = None
    source: str = ""  # "file:line" of the first token


def check_tag(tag: str, where: str) -> None:
    prefix, _, kind = tag.partition("-")
    if tag != "O" and (prefix not in ("B", "I") or not kind):
        raise TaskDataError(f"{where}: bad tag {tag!r}; expected O, B-TYPE or I-TYPE (BIO scheme)")


def read_conll(path: str | Path, token_column: int = 0, tag_column: int = -1,
               require_tags: bool = True) -> list[TaggedSentence]:
    """Sentences from a CoNLL column file: one token per line, whitespace-separated columns, a blank
    line between sentences, `-DOCSTART-` lines skipped. Every token line must have as many columns as
    the first one. Files with two or more columns carry tags (column `tag_column`, BIO); with
    `require_tags=False` a single-column file (tokens only) is accepted too."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CoNLL file not found: {path}")
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start, width, width_line = 0, 0, 0

    def flush():
        if tokens:
            sentences.append(TaggedSentence(list(tokens), list(tags) if width >= 2 else None, f"{path}:{start}"))
        tokens.clear(), tags.clear()

    for lineno, line in enumerate(read_text_file(path).split("\n"), start=1):
        cols = line.split()
        if not cols or cols[0] == DOCSTART:
            flush()
            continue
        if not width:
            width, width_line = len(cols), lineno
            if require_tags and width < 2:
                raise TaskDataError(f"{path}:{lineno}: one column; expected at least token and tag columns")
        if len(cols) != width:
            raise TaskDataError(f"{path}:{lineno}: {len(cols)} columns, but line {width_line} has {width} "
                                f"(token ... tag); got {line.strip()!r}")
        if not tokens:
            start = lineno
        tokens.append(cols[token_column])
        if width >= 2:
            check_tag(cols[tag_column], f"{path}:{lineno}")
            tags.append(cols[tag_column])
    flush()
    if not sentences:
        raise TaskDataError(f"{path}: no sentences")
    return sentences


# ---- SQuAD ------------------------------------------------------------------------------------------
@dataclass
class QAExample:
    id: str
    question: str
    context: str
    answers: list[tuple[str, int]] = field(default_factory=list)  # (text, char start) in the context
    is_impossible: bool = False
    source: str = ""


def _answers(qa: dict, context: str, where: str, version: str) -> tuple[list[tuple[str, int]], bool]:
    impossible = bool(qa.get("is_impossible", False))
    raw = qa.get("answers", [])
    if not isinstance(raw, list):
        raise TaskDataError(f"{where}: 'answers' must be a list")
    if impossible and raw:
        raise TaskDataError(f"{where}: is_impossible is true but the question has answers")
    if not impossible and not raw:
        hint = "" if version == "v2.0" else " (set is_impossible and version v2.0 for unanswerable questions)"
        raise TaskDataError(f"{where}: no answers{hint}")
    out = []
    for k, ans in enumerate(raw):
        text, start = ans.get("text"), ans.get("answer_start")
        if not isinstance(text, str) or not text or not isinstance(start, int):
            raise TaskDataError(f"{where}: answers[{k}] needs a non-empty 'text' and an integer 'answer_start'")
        found = context[start:start + len(text)]
        if found != text:
            raise TaskDataError(f"{where}: answers[{k}] {text!r} is not in the context at answer_start {start} "
                                f"(the context there reads {found!r})")
        out.append((text, start))
    return out, impossible


def parse_squad(data: dict, source: str = "squad") -> tuple[list[QAExample], str]:
    """Examples from a loaded SQuAD JSON object; returns (examples, version)."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise TaskDataError(f"{source}: expected a SQuAD object with a 'data' list of articles")
    version = "v2.0" if str(data.get("version", "")).startswith("v2") else "v1.1"
    out, seen = [], set()
    for a, article in enumerate(data["data"]):
        for p, para in enumerate(article.get("paragraphs", [])):
            context = para.get("context")
            if not isinstance(context, str) or not context.strip():
                raise TaskDataError(f"{source}: data[{a}].paragraphs[{p}]: missing or empty 'context'")
            for q, qa in enumerate(para.get("qas", [])):
                qid = qa.get("id")
                where = f"{source}: data[{a}].paragraphs[{p}].qas[{q}] (id {qid!r})"
                if qid is None or str(qid) in seen:
                    raise TaskDataError(f"{where}: missing or duplicate question id")
                question = qa.get("question")
                if not isinstance(question, str) or not question.strip():
                    raise TaskDataError(f"{where}: missing or empty 'question'")
                answers, impossible = _answers(qa, context, where, version)
                if impossible:
                    version = "v2.0"
                seen.add(str(qid))
                out.append(QAExample(str(qid), question, context, answers, impossible, where))
    if not out:
        raise TaskDataError(f"{source}: no questions")
    return out, version


def read_squad(path: str | Path) -> tuple[list[QAExample], str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SQuAD file not found: {path}")
    try:
        data = json.loads(read_text_file(path))
    except json.JSONDecodeError as e:
        raise TaskDataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    return parse_squad(data, str(path))
