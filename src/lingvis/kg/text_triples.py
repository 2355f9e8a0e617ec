"""Relation extraction as generation: sentences with gold entity mentions and relation triples, REBEL-style
linearised targets (with entity types), their parser, readers for CONLL04/SpERT JSON and JSONL sentences,
gold annotations of the shapes world's captions, and strict micro-F1 (a triple counts only when the head
and tail text, both types and the relation all match).

Linearisation (one marker-delimited segment per fact; markers are single tokens of the tokenizer):

    <triplet> small red circle <type> circle <tail> large blue square <type> square <rel> left_of
    <entity> orange star <type> star

A `<triplet>` segment is one relation triple; an `<entity>` segment a mention in no triple."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..jsonfile import iter_jsonl, read_json

TRIPLET, ENTITY, TYPE, TAIL, REL = "<triplet>", "<entity>", "<type>", "<tail>", "<rel>"
MARKERS = (TRIPLET, ENTITY, TYPE, TAIL, REL)


@dataclass(frozen=True)
class Mention:
    text: str
    type: str
    span: tuple[int, int] | None = None       # characters [start, end) in the sentence

    def key(self) -> tuple[str, str]:
        return (self.text.lower(), self.type)


@dataclass(frozen=True)
class TextTriple:
    head: Mention
    relation: str
    tail: Mention
    confidence: float = 1.0

    def key(self) -> tuple:
        return (*self.head.key(), self.relation, *self.tail.key())


@dataclass
class Sentence:
    text: str
    id: str = ""
    mentions: list[Mention] = field(default_factory=list)
    triples: list[TextTriple] = field(default_factory=list)


# ---- linearisation ---------------------------------------------------------------------------------------

def _clean(s: str) -> str:
    for m in MARKERS:
        s = s.replace(m, " ")
    return " ".join(s.split())


def linearize(sentence: Sentence) -> str:
    """Triples in order of their head's position, then the mentions in no triple."""
    def pos(m: Mention) -> int:
        return m.span[0] if m.span else 0

    ordered = sorted(sentence.triples, key=lambda t: (pos(t.head), pos(t.tail)))
    parts = [f"{TRIPLET} {_clean(t.head.text)} {TYPE} {t.head.type} {TAIL} {_clean(t.tail.text)} {TYPE} "
             f"{t.tail.type} {REL} {t.relation}" for t in ordered]
    in_triples = {m.key() for t in sentence.triples for m in (t.head, t.tail)}
    parts += [f"{ENTITY} {_clean(m.text)} {TYPE} {m.type}" for m in sorted(sentence.mentions, key=pos)
              if m.key() not in in_triples]
    return " ".join(parts)


_SPLIT = re.compile("(" + "|".join(re.escape(m) for m in MARKERS) + ")")


def parse(text: str, sentence: str | None = None,
          confidences: Sequence[float] | None = None) -> tuple[list[TextTriple], list[Mention]]:
    """Generated text -> (triples, mentions in no triple); malformed segments are skipped. With `sentence`,
    mention spans are located in it (case-insensitive, the first free occurrence); `confidences` gives one
    value per segment in order."""
    tokens = [t.strip() for t in _SPLIT.split(text) if t.strip()]
    segments: list[list[str]] = []
    for t in tokens:
        if t in (TRIPLET, ENTITY):
            segments.append([t])
        elif segments:
            segments[-1].append(t)
    triples, mentions = [], []
    used: list[tuple[int, int]] = []
    for k, seg in enumerate(segments):
        conf = float(confidences[k]) if confidences is not None and k < len(confidences) else 1.0
        fields = _fields(seg)
        if seg[0] == TRIPLET and {"head", "head_type", "tail", "tail_type", "rel"} <= set(fields):
            head = Mention(fields["head"], fields["head_type"], _locate(sentence, fields["head"], used))
            tail = Mention(fields["tail"], fields["tail_type"], _locate(sentence, fields["tail"], used))
            triples.append(TextTriple(head, fields["rel"], tail, conf))
        elif seg[0] == ENTITY and {"head", "head_type"} <= set(fields):
            mentions.append(Mention(fields["head"], fields["head_type"], _locate(sentence, fields["head"], used)))
    return triples, mentions


def _fields(seg: list[str]) -> dict[str, str]:
    """[<triplet>, head, <type>, ht, <tail>, tail, <type>, tt, <rel>, rel] -> named fields (strict order)."""
    order = {TRIPLET: [("head", None), ("head_type", TYPE), ("tail", TAIL), ("tail_type", TYPE), ("rel", REL)],
             ENTITY: [("head", None), ("head_type", TYPE)]}[seg[0]]
    out, i = {}, 1
    for name, marker in order:
        if marker is not None:
            if i >= len(seg) or seg[i] != marker:
                return out
            i += 1
        if i >= len(seg) or seg[i] in MARKERS:
            return out
        out[name] = seg[i]
        i += 1
    return out if i == len(seg) else {}


def _locate(sentence: str | None, text: str, used: list[tuple[int, int]]) -> tuple[int, int] | None:
    if sentence is None:
        return None
    low, needle = sentence.lower(), text.lower()
    start = low.find(needle)
    while start >= 0:
        span = (start, start + len(needle))
        if span not in used:
            used.append(span)
            return span
        start = low.find(needle, start + 1)
    start = low.find(needle)
    return (start, start + len(needle)) if start >= 0 else None


# ---- metrics -----------------------------------------------------------------------------------------------

def micro_f1(gold: Iterable[Iterable], pred: Iterable[Iterable]) -> dict[str, float]:
    """Micro precision/recall/F1 over per-sentence sets of hashable keys."""
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred, strict=True):
        g, p = set(g), set(p)
        tp += len(g & p)
        n_gold += len(g)
        n_pred += len(p)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "gold": n_gold, "predicted": n_pred, "correct": tp}


def strict_triple_f1(gold: Sequence[Sentence], pred: Sequence[list[TextTriple]]) -> dict[str, float]:
    """Strict micro-F1: head text + type, relation, tail text + type must all match (case-insensitive text)."""
    return micro_f1([[t.key() for t in s.triples] for s in gold], [[t.key() for t in p] for p in pred])


def entity_f1(gold: Sequence[Sentence], pred_mentions: Sequence[list[Mention]]) -> dict[str, float]:
    """Micro-F1 of (mention text, type) per sentence (mentions from triples and alone)."""
    return micro_f1([[m.key() for m in s.mentions] for s in gold], [[m.key() for m in p] for p in pred_mentions])


# ---- readers -----------------------------------------------------------------------------------------------

def read_spert(path: str | Path) -> list[Sentence]:
    """CONLL04 / SpERT JSON: a list of {"tokens", "entities": [{"type", "start", "end"}] (token end exclusive),
    "relations": [{"type", "head", "tail"}] (entity indices)} -> Sentences with character spans."""
    path = Path(path)
    data = read_json(path, ValueError, "SpERT/CONLL04 file")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of documents with tokens/entities/relations")
    out = []
    for n, doc in enumerate(data):
        where = f"{path}: document {n}"
        try:
            tokens = [str(t) for t in doc["tokens"]]
            starts, pos = [], 0
            for t in tokens:
                starts.append(pos)
                pos += len(t) + 1
            text = " ".join(tokens)
            ents = []
            for e in doc.get("entities", []):
                s, t = int(e["start"]), int(e["end"])
                if not 0 <= s < t <= len(tokens):
                    raise ValueError(f"{where}: entity span [{s}, {t}) outside {len(tokens)} tokens")
                span = (starts[s], starts[t - 1] + len(tokens[t - 1]))
                ents.append(Mention(" ".join(tokens[s:t]), str(e["type"]), span))
            rels = []
            for r in doc.get("relations", []):
                h, t = int(r["head"]), int(r["tail"])
                if not (0 <= h < len(ents) and 0 <= t < len(ents)):
                    raise ValueError(f"{where}: relation {r} names an entity index outside 0..{len(ents) - 1}")
                rels.append(TextTriple(ents[h], str(r["type"]), ents[t]))
        except KeyError as e:
            raise ValueError(f"{where}: missing field {e.args[0]!r}") from e
        out.append(Sentence(text, str(doc.get("orig_id", n)), ents, rels))
    return out


def read_sentences_jsonl(path: str | Path) -> list[Sentence]:
    """JSONL, one sentence per line: {"text", "id"?, "triples"?: [{"head", "head_type", "tail", "tail_type",
    "relation"}], "entities"?: [{"text", "type"}]} (gold annotations optional)."""
    path = Path(path)
    out = []
    for n, rec in iter_jsonl(path):
        where = f"{path}:{n}"
        try:
            text = str(rec["text"])
            used: list = []
            triples = [TextTriple(Mention(t["head"], t["head_type"], _locate(text, t["head"], used)), t["relation"],
                                  Mention(t["tail"], t["tail_type"], _locate(text, t["tail"], used)))
                       for t in rec.get("triples", [])]
            mentions = [Mention(e["text"], e["type"], _locate(text, e["text"], used)) for e in rec.get("entities", [])]
        except (KeyError, TypeError) as e:
            raise ValueError(f"{where}: missing or malformed field {e}") from e
        seen = {m.key() for m in mentions}
        for t in triples:
            for m in (t.head, t.tail):
                if m.key() not in seen:
                    mentions.append(m)
                    seen.add(m.key())
        out.append(Sentence(text, str(rec.get("id", n)), mentions, triples))
    return out


def read_sentences(path: str | Path) -> list[Sentence]:
    """By extension: .jsonl -> read_sentences_jsonl; .json -> read_spert."""
    return read_sentences_jsonl(path) if str(path).endswith(".jsonl") else read_spert(path)


# ---- the shapes world ------------------------------------------------------------------------------------

RELATION_PHRASES = {"to the left of": "left_of", "to the right of": "right_of", "above": "above", "below": "below"}
_NP = re.compile(r"\b(?:(small|large) )?(red|green|blue|yellow|purple|orange) (circle|square|triangle|star|cross)\b")


def shapes_sentence(caption: str, id: str = "") -> Sentence:
    """Gold annotation of a shapes caption: every '[size] colour shape' phrase is a mention of type shape;
    'NP <relation phrase> NP' is a relation triple (the captions' templates)."""
    mentions = [Mention(m.group(0), m.group(3), m.span()) for m in _NP.finditer(caption)]
    triples = []
    if len(mentions) == 2:
        between = caption[mentions[0].span[1]:mentions[1].span[0]].strip()
        between = re.sub(r"^(?:a|an|the)\s+|\s+(?:a|an|the)$", "", between).strip()
        if between in RELATION_PHRASES:
            triples.append(TextTriple(mentions[0], RELATION_PHRASES[between], mentions[1]))
    return Sentence(caption, id, mentions, triples)


def mention_attributes(m: Mention) -> dict[str, str]:
    """Attributes a shapes mention states: {'size': ..., 'colour': ...} (missing ones left out)."""
    found = _NP.fullmatch(m.text.lower()) or _NP.search(m.text.lower())
    if not found:
        return {}
    out = {"colour": found.group(2)}
    if found.group(1):
        out["size"] = found.group(1)
    return out
