"""Records -> RDF quads (N-Quads text, the fastest way into Oxigraph) and SPARQL rows -> records.

One source document = one named graph holding its asserted triples, the descriptions of the entities it
observes, a reified `kg:Statement` per triple with PROV-O provenance (prov:wasDerivedFrom the source,
prov:wasAttributedTo the model, kg:confidence, kg:charStart/kg:charEnd or kg:box) and its `kg:Mention`s."""
from __future__ import annotations

import functools
from collections.abc import Iterable

from . import vocab as V
from .records import TYPE, Entity, Mention, SourceDoc, Statement

_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})
_BAD_IRI = set('<>"{}|^`\\ \n\r\t')


def iri(value: str) -> str:
    if any(c in _BAD_IRI for c in value):
        raise ValueError(f"not a valid IRI: {value!r}")
    return f"<{value}>"


def lit(value: object) -> str:
    """An N-Triples literal: str -> plain string, bool/int/float -> typed."""
    if isinstance(value, bool):
        return f'"{str(value).lower()}"^^<{V.XSD}boolean>'
    if isinstance(value, int):
        return f'"{value}"^^<{V.XSD}integer>'
    if isinstance(value, float):
        return f'"{value!r}"^^<{V.XSD}double>'
    return '"' + str(value).translate(_ESCAPES) + '"'


def _box(box) -> str:
    return " ".join(f"{float(v):.6g}" for v in box)


def predicate_iri(name: str) -> str:
    return V.RDF_TYPE if name == TYPE else V.pred(name)


# minted IRIs are percent-quoted or sanitised (safe inside <>): cached and not re-validated
@functools.lru_cache(maxsize=4096)
def _p(name: str) -> str:
    return f"<{predicate_iri(name)}>"


@functools.lru_cache(maxsize=4096)
def _c(name: str) -> str:
    return f"<{V.cls(name)}>"


@functools.lru_cache(maxsize=1024)
def _m(name: str) -> str:
    return f"<{V.model_iri(name)}>"


def _e(entity: str) -> str:
    return f"<{V.entity_iri(entity)}>"


A = f"<{V.RDF_TYPE}>"
LABEL = f"<{V.LABEL}>"
R_SUBJ, R_PRED, R_OBJ = (f"<{V.RDF}{x}>" for x in ("subject", "predicate", "object"))
DERIVED, ATTRIBUTED = f"<{V.PROV}wasDerivedFrom>", f"<{V.PROV}wasAttributedTo>"
PROV_ENTITY, SOFTWARE = f"<{V.PROV}Entity>", f"<{V.PROV}SoftwareAgent>"


def object_term(s: Statement) -> str:
    if s.predicate == TYPE:
        return _c(s.object)
    return lit(s.object) if s.literal else _e(s.object)


def statement_iri(s: Statement) -> str:
    return V.statement_iri(s.source, s.subject, s.predicate, s.object, s.literal, s.span, s.box, s.model)


def doc_quads(doc: SourceDoc) -> list[str]:
    """The N-Quads lines of one source document (its graph IRI is the source IRI)."""
    g = f"<{V.source_iri(doc.name)}>"
    kind = {"image": "Image", "caption": "Caption"}.get(doc.kind, "Source")
    out = [f"{g} {A} {_c(kind)} {g} .", f"{g} {A} {PROV_ENTITY} {g} .", f"{g} {LABEL} {lit(doc.name)} {g} ."]
    for name, value in (("text", doc.text), ("fileName", doc.file), ("scene", doc.scene)):
        if value is not None:
            out.append(f"{g} {_p(name)} {lit(value)} {g} .")
    for e in doc.entities:
        out += entity_quads(e, g)
    models = set()
    for s in doc.statements:
        out += statement_quads(s, g)
        models.add(s.model)
    for m in doc.mentions:
        out += mention_quads(m, g)
        models.add(m.model)
    for name in sorted(models):
        m = _m(name)
        out += [f"{m} {A} {_c('Model')} {g} .", f"{m} {A} {SOFTWARE} {g} .", f"{m} {LABEL} {lit(name)} {g} ."]
    return out


def entity_quads(e: Entity, g: str) -> list[str]:
    s = _e(e.id)
    out = [f"{s} {A} {_c('Entity')} {g} .", f"{s} {A} {_c(e.type)} {g} ."]
    if e.label:
        out.append(f"{s} {LABEL} {lit(e.label)} {g} .")
    if e.scene is not None:
        out.append(f"{s} {_p('scene')} {lit(e.scene)} {g} .")
    for k, v in sorted(e.attributes.items()):
        out.append(f"{s} {_p(k)} {lit(v)} {g} .")
    return out


def _where(node: str, span, box, g: str) -> list[str]:
    out = []
    if span is not None:
        out += [f"{node} {_p('charStart')} {lit(int(span[0]))} {g} .", f"{node} {_p('charEnd')} {lit(int(span[1]))} {g} ."]
    if box is not None:
        out.append(f"{node} {_p('box')} {lit(_box(box))} {g} .")
    return out


def statement_quads(s: Statement, g: str) -> list[str]:
    subj, p, o = _e(s.subject), _p(s.predicate), object_term(s)
    st = f"<{statement_iri(s)}>"
    return [f"{subj} {p} {o} {g} .", f"{st} {A} {_c('Statement')} {g} .", f"{st} {R_SUBJ} {subj} {g} .",
            f"{st} {R_PRED} {p} {g} .", f"{st} {R_OBJ} {o} {g} .", f"{st} {DERIVED} {g} {g} .",
            f"{st} {ATTRIBUTED} {_m(s.model)} {g} .",
            f"{st} {_p('confidence')} {lit(float(s.confidence))} {g} ."] + _where(st, s.span, s.box, g)


def mention_quads(m: Mention, g: str) -> list[str]:
    from .records import mention_key

    mn = f"<{V.DATA}mention/{mention_key(m)}>"
    out = [f"{mn} {A} {_c('Mention')} {g} .", f"{mn} {_p('denotes')} {_e(m.entity)} {g} .",
           f"{mn} {DERIVED} {g} {g} .", f"{mn} {ATTRIBUTED} {_m(m.model)} {g} .",
           f"{mn} {_p('linkScore')} {lit(float(m.score))} {g} ."]
    if m.text is not None:
        out.append(f"{mn} {_p('mentionText')} {lit(m.text)} {g} .")
    return out + _where(mn, m.span, m.box, g)


def vocabulary_quads() -> list[str]:
    g = iri(V.VOCAB_GRAPH)
    return [f"{iri(s)} {iri(p)} {lit(o[1]) if isinstance(o, tuple) else iri(o)} {g} ."
            for s, p, o in V.vocabulary_triples()]


def nquads(lines: Iterable[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


# ---- SPARQL JSON terms -> record fields --------------------------------------------------------------------

def term_value(term: dict | None):
    """A SPARQL-results-JSON term -> a Python value (IRIs stay strings, typed numbers become numbers)."""
    if term is None:
        return None
    v = term["value"]
    dt = term.get("datatype", "")
    if dt in (V.XSD + "double", V.XSD + "float", V.XSD + "decimal"):
        return float(v)
    if dt in (V.XSD + "integer", V.XSD + "int", V.XSD + "long"):
        return int(v)
    return v


def parse_box(text: str | None):
    if not text:
        return None
    vals = tuple(float(x) for x in text.split())
    if len(vals) != 4:
        raise ValueError(f"a box must have 4 numbers, got {text!r}")
    return vals


def statement_from_row(row: dict) -> Statement:
    """A row of `queries.STATEMENTS` -> a Statement."""
    p_iri = row["p"]["value"]
    o = row["o"]
    if p_iri == V.RDF_TYPE:
        pred, obj, literal = TYPE, V.local_name(o["value"]), True
    elif o["type"] == "uri" and o["value"].startswith(V.DATA + "entity/"):
        pred, obj, literal = V.local_name(p_iri), V.entity_id(o["value"]), False
    else:
        pred, obj, literal = V.local_name(p_iri), str(o["value"]), True
    span = None
    if row.get("cs") is not None and row.get("ce") is not None:
        span = (int(row["cs"]["value"]), int(row["ce"]["value"]))
    return Statement(V.entity_id(row["s"]["value"]), pred, obj, V.source_name(row["src"]["value"]),
                     float(row["conf"]["value"]), V.model_name(row["model"]["value"]), span,
                     parse_box(row.get("box", {}).get("value")), literal)
