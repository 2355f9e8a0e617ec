"""The lingvis knowledge-graph vocabulary: namespaces, class and predicate IRIs, their schema.org / Wikidata
mappings, and IRIs minted for entities, sources, statements and mentions (docs/kg.md documents it all).

Plain strings only (no RDF library): the store and the exporters build terms from these."""
from __future__ import annotations

import hashlib
import re
import urllib.parse

VOCAB = "https://lingvis.dev/ns/kg#"      # classes and predicates
DATA = "https://lingvis.dev/kg/"           # minted instances: entity/, source/, statement/, mention/, model/
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RDFS = "http://www.w3.org/2000/01/rdf-schema#"
XSD = "http://www.w3.org/2001/XMLSchema#"
OWL = "http://www.w3.org/2002/07/owl#"
SKOS = "http://www.w3.org/2004/02/skos/core#"
PROV = "http://www.w3.org/ns/prov#"
SCHEMA = "https://schema.org/"
WD = "http://www.wikidata.org/entity/"
WDT = "http://www.wikidata.org/prop/direct/"
OA = "http://www.w3.org/ns/oa#"

PREFIXES = {"kg": VOCAB, "kgd": DATA, "rdf": RDF, "rdfs": RDFS, "xsd": XSD, "owl": OWL, "skos": SKOS,
            "prov": PROV, "schema": SCHEMA, "wd": WD, "wdt": WDT, "oa": OA}

RDF_TYPE = RDF + "type"
LABEL = RDFS + "label"
VOCAB_GRAPH = DATA + "graph/vocabulary"   # the named graph holding the vocabulary below

# the built-in shapes world: entity types = shape names, attributes colour and size, spatial predicates
SHAPE_TYPES = ("circle", "square", "triangle", "star", "cross")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = ("small", "large")
ATTRIBUTES = ("colour", "size")
SPATIAL = ("left_of", "right_of", "above", "below")
INVERSE = {"left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above"}

# class -> (equivalent / matching IRIs); owl:equivalentClass for schema.org, skos:exactMatch for Wikidata items
CLASS_MAP: dict[str, list[str]] = {
    "Entity": [SCHEMA + "Thing"],
    "Shape": [],
    "circle": [WD + "Q17278"], "square": [WD + "Q164"], "triangle": [WD + "Q19821"], "cross": [WD + "Q40843"],
    "star": [],
    "Image": [SCHEMA + "ImageObject"],
    "Caption": [SCHEMA + "CreativeWork"],
    "Mention": [],
    "Statement": [RDF + "Statement"],
    "Model": [PROV + "SoftwareAgent"],
    # CONLL04 entity types
    "Peop": [SCHEMA + "Person", WD + "Q5"], "Org": [SCHEMA + "Organization", WD + "Q43229"],
    "Loc": [SCHEMA + "Place"], "Other": [],
}
PREDICATE_MAP: dict[str, list[str]] = {
    "colour": [SCHEMA + "color", WDT + "P462"],
    "size": [SCHEMA + "size"],
    "left_of": [], "right_of": [], "above": [], "below": [],
    "confidence": [], "charStart": [OA + "start"], "charEnd": [OA + "end"], "box": [],
    "denotes": [], "linkScore": [], "mentionText": [OA + "exact"], "scene": [], "text": [SCHEMA + "text"],
    "fileName": [SCHEMA + "contentUrl"],
    # CONLL04 relations
    "Work_For": [SCHEMA + "worksFor", WDT + "P108"], "Live_In": [WDT + "P551"], "Located_In": [WDT + "P131"],
    "OrgBased_In": [WDT + "P159"], "Kill": [],
}
COLOUR_ITEMS = {"red": WD + "Q3142", "green": WD + "Q3133", "blue": WD + "Q1088", "yellow": WD + "Q943",
                "purple": WD + "Q3257809", "orange": WD + "Q39338"}

_NAME = re.compile(r"[^A-Za-z0-9_\-]+")


def term_name(name: str) -> str:
    """A vocabulary local name from free text: 'located in' -> 'located_in'."""
    out = _NAME.sub("_", name.strip()).strip("_")
    if not out:
        raise ValueError(f"cannot make a vocabulary name from {name!r}")
    return out


def cls(name: str) -> str:
    """Class IRI of an entity type ('circle' -> kg:circle)."""
    return VOCAB + term_name(name)


def pred(name: str) -> str:
    """Predicate IRI ('left_of' -> kg:left_of; 'colour' -> kg:colour)."""
    return VOCAB + term_name(name)


def local_name(iri: str) -> str:
    """'https://lingvis.dev/ns/kg#left_of' -> 'left_of'; other IRIs unchanged."""
    return iri[len(VOCAB):] if iri.startswith(VOCAB) else iri


def _quote(key: str) -> str:
    return urllib.parse.quote(key, safe="-_.~:/")


def entity_iri(entity_id: str) -> str:
    return DATA + "entity/" + _quote(entity_id)


def entity_id(iri: str) -> str:
    prefix = DATA + "entity/"
    if not iri.startswith(prefix):
        raise ValueError(f"{iri!r} is not a lingvis entity IRI")
    return urllib.parse.unquote(iri[len(prefix):])


def source_iri(source: str) -> str:
    """Named graph / document IRI of a source ('train_000001.png' or 'caption:42')."""
    return DATA + "source/" + _quote(source)


def source_name(iri: str) -> str:
    prefix = DATA + "source/"
    return urllib.parse.unquote(iri[len(prefix):]) if iri.startswith(prefix) else iri


def model_iri(model: str) -> str:
    return DATA + "model/" + _quote(model)


def model_name(iri: str) -> str:
    prefix = DATA + "model/"
    return urllib.parse.unquote(iri[len(prefix):]) if iri.startswith(prefix) else iri


def digest(*parts: object) -> str:
    """A short stable hash of the parts (statement and mention IRIs are content-addressed)."""
    return hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()[:20]


def statement_iri(*parts: object) -> str:
    return DATA + "statement/" + digest(*parts)


def mention_iri(*parts: object) -> str:
    return DATA + "mention/" + digest(*parts)


def _class_link(target: str) -> str:
    """schema.org classes are equivalent, Wikidata items exact matches, RDF/PROV classes superclasses."""
    if target.startswith(SCHEMA):
        return OWL + "equivalentClass"
    if target.startswith(WD):
        return SKOS + "exactMatch"
    return RDFS + "subClassOf"


def vocabulary_triples() -> list[tuple[str, str, str | tuple]]:
    """The vocabulary as (s, p, o) triples: o is an IRI string or ("literal", value). Classes, predicates,
    owl/skos mappings, spatial inverses and the Wikidata items of the colour values."""
    out: list[tuple[str, str, object]] = []
    for name, matches in CLASS_MAP.items():
        c = cls(name)
        out += [(c, RDF_TYPE, OWL + "Class"), (c, LABEL, ("literal", name))]
        if name in SHAPE_TYPES:
            out.append((c, RDFS + "subClassOf", cls("Shape")))
        if name in ("Shape", "Peop", "Org", "Loc", "Other"):
            out.append((c, RDFS + "subClassOf", cls("Entity")))
        for m in matches:
            out.append((c, _class_link(m), m))
    for name, matches in PREDICATE_MAP.items():
        p = pred(name)
        kind = "ObjectProperty" if name in SPATIAL or name == "denotes" or name[0].isupper() else "DatatypeProperty"
        out += [(p, RDF_TYPE, OWL + kind), (p, LABEL, ("literal", name))]
        for m in matches:
            out.append((p, SKOS + "closeMatch" if m.startswith(OA) else OWL + "equivalentProperty", m))
    for a, b in INVERSE.items():
        out.append((pred(a), OWL + "inverseOf", pred(b)))
    for colour, item in COLOUR_ITEMS.items():
        out.append((DATA + "value/colour/" + colour, SKOS + "exactMatch", item))
        out.append((DATA + "value/colour/" + colour, LABEL, ("literal", colour)))
    return out
