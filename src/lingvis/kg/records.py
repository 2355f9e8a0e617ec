"""The records a knowledge graph is made of, independent of RDF: entities, statements (a triple with its
PROV-O provenance) and mentions (a caption span or an image box that denotes an entity), grouped per source
document. Also the JSONL exchange format: one JSON object per line, an entity
`{"id", "type", "label", "attributes", "sources"}`, a triple `{"subject", "predicate", "object", "source",
"confidence", ...}`, a mention `{"mention", "entity", "source", ...}` or a source document
`{"source", "kind", "text"?, "file"?, "scene"?}`."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..jsonfile import iter_jsonl

TYPE = "type"  # the statement predicate that gives an entity its class (rdf:type)


@dataclass
class Entity:
    id: str                                   # stable key, e.g. "train_000001.png#red-circle"
    type: str                                 # class name, e.g. "circle"
    label: str = ""                           # human-readable name, e.g. "small red circle"
    attributes: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    scene: str | None = None                  # the scene / document context entities are keyed in

    def to_json(self) -> dict:
        out = {"id": self.id, "type": self.type, "label": self.label, "attributes": dict(self.attributes),
               "sources": list(self.sources)}
        if self.scene is not None:
            out["scene"] = self.scene
        return out


@dataclass
class Statement:
    """subject --predicate--> object, as asserted by `source` (a named graph), with provenance: the model that
    produced it, its confidence and where in the source it was read (character span or normalised box)."""
    subject: str                              # entity id
    predicate: str                            # vocabulary name: left_of, colour, type, Work_For, ...
    object: str                               # entity id, or a literal value when `literal`
    source: str
    confidence: float = 1.0
    model: str = "given"
    span: tuple[int, int] | None = None       # [start, end) characters in the source text
    box: tuple[float, float, float, float] | None = None  # (x0, y0, x1, y1) in [0, 1] of the image
    literal: bool = False

    def __post_init__(self):
        if not 0.0 <= float(self.confidence) <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence} ({self.subject} "
                             f"{self.predicate} {self.object})")
        if self.predicate == TYPE and not self.literal:
            self.literal = True

    @property
    def key(self) -> tuple[str, str, str]:
        return self.subject, self.predicate, self.object

    def to_json(self) -> dict:
        out = {"subject": self.subject, "predicate": self.predicate, "object": self.object, "source": self.source,
               "confidence": round(float(self.confidence), 6), "model": self.model}
        if self.literal:
            out["literal"] = True
        if self.span is not None:
            out["span"] = list(self.span)
        if self.box is not None:
            out["box"] = [round(float(v), 6) for v in self.box]
        return out


@dataclass
class Mention:
    """A piece of a source (text span or image box) that denotes an entity, with the linking score."""
    entity: str
    source: str
    text: str | None = None
    span: tuple[int, int] | None = None
    box: tuple[float, float, float, float] | None = None
    score: float = 1.0
    model: str = "given"

    def to_json(self) -> dict:
        out = {"mention": mention_key(self), "entity": self.entity, "source": self.source,
               "score": round(float(self.score), 6), "model": self.model}
        if self.text is not None:
            out["text"] = self.text
        if self.span is not None:
            out["span"] = list(self.span)
        if self.box is not None:
            out["box"] = [round(float(v), 6) for v in self.box]
        return out


def mention_key(m: Mention) -> str:
    from .vocab import digest

    return digest(m.source, m.entity, m.span, m.box, m.text)


@dataclass
class SourceDoc:
    """Everything one source document (an image or a caption) contributes: stored as one named graph, so
    adding the same document again replaces its graph and never duplicates anything."""
    name: str                                 # "train_000001.png" or "caption:42"
    kind: str = "text"                        # image | caption | text
    text: str | None = None
    file: str | None = None
    scene: str | None = None
    entities: list[Entity] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    mentions: list[Mention] = field(default_factory=list)

    def to_json(self) -> dict:
        out = {"source": self.name, "kind": self.kind}
        out.update({k: v for k, v in (("text", self.text), ("file", self.file), ("scene", self.scene))
                    if v is not None})
        return out


# ---- JSONL --------------------------------------------------------------------------------------------------

def write_jsonl(path: str | Path, entities: list[Entity], statements: list[Statement],
                mentions: list[Mention] = (), sources: list[SourceDoc] = ()) -> Path:
    """Sources, entities, triples, then mentions (one JSON object per line), written atomically."""
    from ..io import atomic_write_text

    lines = [json.dumps(d.to_json(), ensure_ascii=False) for d in sources]
    lines += [json.dumps(e.to_json(), ensure_ascii=False) for e in entities]
    lines += [json.dumps(s.to_json(), ensure_ascii=False) for s in statements]
    lines += [json.dumps(m.to_json(), ensure_ascii=False) for m in mentions]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def _tuple(v, n: int, what: str, where: str):
    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise ValueError(f"{where}: {what} must be a list of {n} numbers, got {v!r}")
    return tuple(float(x) if n == 4 else int(x) for x in v)


def read_jsonl(path: str | Path) -> tuple[list[Entity], list[Statement], list[Mention], list[SourceDoc]]:
    """Parse the JSONL exchange format; every bad line raises naming the file, line and field."""
    path = Path(path)
    entities, statements, mentions, sources = [], [], [], []
    for n, rec in iter_jsonl(path):
        where = f"{path}:{n}"
        try:
            if "mention" in rec:
                mentions.append(Mention(rec["entity"], rec["source"], rec.get("text"),
                                        _tuple(rec.get("span"), 2, "span", where),
                                        _tuple(rec.get("box"), 4, "box", where), float(rec.get("score", 1.0)),
                                        rec.get("model", "given")))
            elif "subject" in rec:
                statements.append(Statement(
                    str(rec["subject"]), str(rec["predicate"]), str(rec["object"]), str(rec["source"]),
                    float(rec.get("confidence", 1.0)), rec.get("model", "given"),
                    _tuple(rec.get("span"), 2, "span", where), _tuple(rec.get("box"), 4, "box", where),
                    bool(rec.get("literal", False))))
            elif "source" in rec:
                sources.append(SourceDoc(str(rec["source"]), str(rec.get("kind", "text")), rec.get("text"),
                                         rec.get("file"), rec.get("scene")))
            elif "id" in rec:
                attrs = rec.get("attributes") or {}
                if not isinstance(attrs, dict):
                    raise ValueError(f"{where}: attributes must be an object, got {attrs!r}")
                entities.append(Entity(str(rec["id"]), str(rec["type"]), str(rec.get("label", "")),
                                       {str(k): str(v) for k, v in attrs.items()},
                                       [str(s) for s in rec.get("sources") or []], rec.get("scene")))
            else:
                raise ValueError(f"{where}: a line must be an entity (id), a triple (subject), a mention or a "
                                 "source")
        except KeyError as e:
            raise ValueError(f"{where}: missing field {e.args[0]!r}") from e
    return entities, statements, mentions, sources


def docs_from_records(entities: list[Entity], statements: list[Statement], mentions: list[Mention] = (),
                      sources: list[SourceDoc] = ()) -> list[SourceDoc]:
    """Group records into source documents: an entity is described in every source that lists it (without
    sources: in the sources of its statements, else in 'import')."""
    docs: dict[str, SourceDoc] = {d.name: SourceDoc(d.name, d.kind, d.text, d.file, d.scene) for d in sources}

    def doc(name: str) -> SourceDoc:
        if name not in docs:
            docs[name] = SourceDoc(name, kind=_guess_kind(name))
        return docs[name]

    for s in statements:
        doc(s.source).statements.append(s)
    for m in mentions:
        doc(m.source).mentions.append(m)
    for e in entities:
        srcs = e.sources or sorted({s.source for s in statements if s.subject == e.id or s.object == e.id})
        for src in srcs or ["import"]:
            doc(src).entities.append(e)
    return list(docs.values())


def _guess_kind(name: str) -> str:
    if name.startswith("caption:"):
        return "caption"
    if name.lower().endswith((".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")):
        return "image"
    return "text"
