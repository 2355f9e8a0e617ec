"""Entity-level precision/recall/F1 for sequence labelling (NER, chunking).

Tags are 'O' or PREFIX-TYPE (e.g. 'B-PER', 'I-LOC'). Two decoding modes:
- mode='lenient' (default; conlleval / seqeval default): accepts BIO, IOB1, IOB2 and also
  BIOES prefixes E-/S-; an I- tag after O or after another type starts a new entity.
- mode='strict' with scheme='IOB2': an entity is exactly B-X followed by I-X*; a stray I-X
  belongs to no entity (seqeval's strict mode).
An entity is counted correct only when type, start and end all match."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from lingvis.eval._common import f_beta, safe_div

Entity = tuple[str, int, int]  # (type, start, end) with inclusive end, indices within one sentence
MODES = ("lenient", "strict")
_LENIENT_PREFIXES = {"B", "I", "E", "S"}


@dataclass
class EntityScores:
    """Per-type and overall (micro) entity-level scores; support counts gold entities."""

    precision: float
    recall: float
    f1: float
    support: int
    per_type: dict[str, dict[str, float]] = field(default_factory=dict)
    macro: dict[str, float] = field(default_factory=dict)


def _split(tag: str, where: str, mode: str) -> tuple[str, str]:
    """Return (prefix, type) of one tag; 'O' gives ('O', '')."""
    if tag == "O":
        return "O", ""
    prefix, sep, etype = tag.partition("-")
    allowed = _LENIENT_PREFIXES if mode == "lenient" else {"B", "I"}
    if not sep or prefix not in allowed or not etype:
        raise ValueError(f"{where}: bad tag {tag!r}; expected 'O' or one of {sorted(allowed)} + '-TYPE'")
    return prefix, etype


def _ends(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    """Lenient rule: does the chunk open at the previous token end before the current one?"""
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and cur in ("B", "S", "O"):
        return True
    return prev != "O" and prev_type != cur_type


def _starts(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    """Lenient rule: does a new chunk start at the current token?"""
    if cur in ("B", "S"):
        return True
    if prev in ("E", "S", "O") and cur in ("E", "I"):
        return True
    return cur != "O" and prev_type != cur_type


def _lenient_entities(parsed: list[tuple[str, str]]) -> list[Entity]:
    out: list[Entity] = []
    prev, prev_type, begin = "O", "", 0
    for i, (cur, cur_type) in enumerate(parsed + [("O", "")]):
        if _ends(prev, prev_type, cur, cur_type):
            out.append((prev_type, begin, i - 1))
        if _starts(prev, prev_type, cur, cur_type):
            begin = i
        prev, prev_type = cur, cur_type
    return out


def _strict_iob2_entities(parsed: list[tuple[str, str]]) -> list[Entity]:
    out: list[Entity] = []
    open_type, begin = None, 0
    for i, (cur, cur_type) in enumerate(parsed + [("O", "")]):
        if open_type is not None and not (cur == "I" and cur_type == open_type):
            out.append((open_type, begin, i - 1))
            open_type = None
        if cur == "B":
            open_type, begin = cur_type, i
    return out


def get_entities(tags: Sequence[str], mode: str = "lenient", where: str = "sequence") -> list[Entity]:
    """Entities (type, start, end-inclusive) decoded from one tag sequence."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    parsed = [_split(tag, f"{where} token {i}", mode) for i, tag in enumerate(tags)]
    return _lenient_entities(parsed) if mode == "lenient" else _strict_iob2_entities(parsed)


def _collect(seqs: Sequence[Sequence[str]], name: str, mode: str) -> set[tuple[int, str, int, int]]:
    found = set()
    for s, tags in enumerate(seqs):
        if isinstance(tags, str):
            raise TypeError(f"{name}[{s}] is a string; expected a list of tags")
        for etype, start, end in get_entities(tags, mode, f"{name}[{s}]"):
            found.add((s, etype, start, end))
    return found


def entity_scores(
    y_true: Sequence[Sequence[str]],
    y_pred: Sequence[Sequence[str]],
    mode: str = "lenient",
    scheme: str = "IOB2",
) -> EntityScores:
    """Micro-averaged entity P/R/F1 over sentences, with a per-type breakdown and macro mean."""
    if mode == "strict" and scheme.upper() != "IOB2":
        raise ValueError(f"strict mode supports scheme='IOB2' only, got {scheme!r}")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} sequences but y_pred has {len(y_pred)}")
    for s, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sequence {s}: y_true has {len(t)} tags but y_pred has {len(p)}")
    gold, pred = _collect(y_true, "y_true", mode), _collect(y_pred, "y_pred", mode)
    per_type: dict[str, dict[str, float]] = {}
    for etype in sorted({e[1] for e in gold | pred}):
        g = {e for e in gold if e[1] == etype}
        p = {e for e in pred if e[1] == etype}
        prec, rec = safe_div(len(g & p), len(p)), safe_div(len(g & p), len(g))
        per_type[etype] = {"precision": prec, "recall": rec, "f1": f_beta(prec, rec), "support": len(g)}
    hit = len(gold & pred)
    prec, rec = safe_div(hit, len(pred)), safe_div(hit, len(gold))
    n = len(per_type)
    macro = {k: safe_div(sum(v[k] for v in per_type.values()), n) for k in ("precision", "recall", "f1")}
    return EntityScores(prec, rec, f_beta(prec, rec), len(gold), per_type, macro)
