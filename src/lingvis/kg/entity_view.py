"""What an entity page shows, read from a store by SPARQL: entity search, one entity's description (types,
labels, attributes), the caption sentences that mention it (with the mention's character span), its image
mentions (source image and box, for crops) and the triples it takes part in with their provenance. Also
the lookup behind image crops: a mention key -> (image file registered in the graph, box)."""
from __future__ import annotations

import re

from . import queries as Q
from . import vocab as V
from .rdf import iri, lit, parse_box, statement_from_row
from .records import TYPE

MENTION_KEY = re.compile(r"^[0-9a-f]{20}$")
MAX_WORDS = 8


def _words(text: str) -> list[str]:
    return [w for w in text.lower().split() if w][:MAX_WORDS]


def search_entities(store, text: str, limit: int = 50) -> list[dict]:
    """Entities whose id, label or class contain every word of `text` (case-insensitive); all entities
    (first `limit` by id) for an empty text. -> [{"id", "type", "label", "scene"}]"""
    filters = " ".join(f"FILTER(CONTAINS(?t, {lit(w)}))" for w in _words(text))
    q = Q.PREFIX + f"""SELECT DISTINCT ?e WHERE {{
      ?e a kg:Entity .
      OPTIONAL {{ ?e rdfs:label ?l }}
      OPTIONAL {{ ?e a ?c . FILTER(?c != kg:Entity) }}
      BIND(LCASE(CONCAT(STR(?e), " ", COALESCE(?l, ""), " ", COALESCE(STR(?c), ""))) AS ?t)
      {filters}
    }} ORDER BY ?e LIMIT {int(limit)}"""
    ids = [r["e"]["value"] for r in store.query(q).rows]
    info = describe_entities(store, ids)
    return [{"id": V.entity_id(e), **info[e]} for e in ids]


def describe_entities(store, iris: list[str]) -> dict[str, dict]:
    """entity IRI -> {"type", "label", "scene"} (deterministic picks when sources disagree)."""
    if not iris:
        return {}
    values = " ".join(iri(e) for e in iris)
    q = Q.PREFIX + f"""SELECT ?e ?type ?label ?scene WHERE {{
      VALUES ?e {{ {values} }}
      OPTIONAL {{ ?e a ?type . FILTER(?type != kg:Entity && ?type != kg:Shape) }}
      OPTIONAL {{ ?e rdfs:label ?label }}
      OPTIONAL {{ ?e kg:scene ?scene }} }}"""
    out = {e: {"type": None, "label": None, "scene": None} for e in iris}
    for r in store.query(q).rows:
        d = out[r["e"]["value"]]
        for k in ("type", "label", "scene"):
            if k in r:
                v = V.local_name(r[k]["value"]) if k == "type" else r[k]["value"]
                if d[k] is None or v < d[k]:
                    d[k] = v
    return out


class EntityNotFound(LookupError):
    """The graph holds no entity of that id."""


def entity_page(store, entity: str) -> dict:
    """Everything the entity page shows about `entity` (an entity id, e.g. 'train_000001.png/red-circle'):
    {"id", "type", "types", "labels", "scene", "attributes": {name: [values]}, "sentences": [...],
     "images": [...], "triples": [...], "entities": {id: {"type", "label"}} for every linked entity}."""
    e = V.entity_iri(entity)
    rows = store.query(Q.PREFIX + f"""SELECT ?p ?v WHERE {{ {iri(e)} ?p ?v .
      FILTER(?p = rdf:type || isLiteral(?v)) }}""").rows
    types = sorted({V.local_name(r["v"]["value"]) for r in rows if r["p"]["value"] == V.RDF_TYPE})
    if "Entity" not in types:
        raise EntityNotFound(f"no entity {entity!r} in the graph")
    labels = sorted({r["v"]["value"] for r in rows if r["p"]["value"] == V.LABEL})
    scene = min((r["v"]["value"] for r in rows if r["p"]["value"] == V.pred("scene")), default=None)
    attributes: dict[str, list[str]] = {}
    for r in rows:
        p = r["p"]["value"]
        if p not in (V.RDF_TYPE, V.LABEL, V.pred("scene")) and r["v"]["type"] == "literal":
            attributes.setdefault(V.local_name(p), []).append(r["v"]["value"])
    page = {"id": entity, "type": next((t for t in types if t not in ("Entity", "Shape")), "Entity"),
            "types": types, "labels": labels, "scene": scene,
            "attributes": {k: sorted(set(v)) for k, v in sorted(attributes.items())},
            "sentences": [], "images": [], "triples": _triples(store, e)}
    _mentions(store, e, page)
    linked = sorted({V.entity_iri(x) for t in page["triples"] for x in (t["subject"], t["object"])
                     if not t["literal"] and x != entity})
    page["entities"] = {V.entity_id(k): {"type": v["type"], "label": v["label"]}
                        for k, v in describe_entities(store, linked).items()}
    return page


def _triples(store, e: str) -> list[dict]:
    """The statements with `e` as subject or object, one entry per distinct triple with its provenance."""
    q = Q.PREFIX + f"""SELECT ?s ?p ?o ?src ?conf ?model ?cs ?ce ?box WHERE {{
      {{ ?st rdf:subject {iri(e)} }} UNION {{ ?st rdf:object {iri(e)} }}
      ?st a kg:Statement ; rdf:subject ?s ; rdf:predicate ?p ; rdf:object ?o ;
          prov:wasDerivedFrom ?src ; kg:confidence ?conf ; prov:wasAttributedTo ?model .
      OPTIONAL {{ ?st kg:charStart ?cs ; kg:charEnd ?ce }}
      OPTIONAL {{ ?st kg:box ?box }} }}"""
    grouped: dict[tuple, dict] = {}
    for r in store.query(q).rows:
        try:
            s = statement_from_row(r)
        except ValueError:
            continue  # a statement about something that is not a lingvis entity
        t = grouped.setdefault((s.subject, s.predicate, s.object, s.literal), {
            "subject": s.subject, "predicate": s.predicate, "object": s.object, "literal": s.literal,
            "confidence": 0.0, "provenance": []})
        t["confidence"] = max(t["confidence"], s.confidence)
        t["provenance"].append({"source": s.source, "model": s.model, "confidence": s.confidence,
                                "span": list(s.span) if s.span else None, "box": list(s.box) if s.box else None})
    order = {TYPE: 0}
    for t in grouped.values():
        t["provenance"].sort(key=lambda p: (-p["confidence"], p["source"]))
    return sorted(grouped.values(), key=lambda t: (t["subject"] != V.entity_id(e), order.get(t["predicate"], 1),
                                                   t["predicate"], t["subject"], t["object"]))


def _mentions(store, e: str, page: dict) -> None:
    q = Q.PREFIX + f"""SELECT ?m ?src ?kind ?score ?model ?text ?cs ?ce ?box ?sentence ?file WHERE {{
      ?m a kg:Mention ; kg:denotes {iri(e)} ; prov:wasDerivedFrom ?src ; kg:linkScore ?score ;
         prov:wasAttributedTo ?model .
      OPTIONAL {{ ?src a ?kind . FILTER(?kind IN (kg:Image, kg:Caption)) }}
      OPTIONAL {{ ?m kg:mentionText ?text }}
      OPTIONAL {{ ?m kg:charStart ?cs ; kg:charEnd ?ce }}
      OPTIONAL {{ ?m kg:box ?box }}
      OPTIONAL {{ ?src kg:text ?sentence }}
      OPTIONAL {{ ?src kg:fileName ?file }} }} ORDER BY ?src ?m"""
    seen = set()
    for r in store.query(q).rows:
        key = r["m"]["value"].rsplit("/", 1)[-1]
        if key in seen:
            continue
        seen.add(key)
        common = {"mention": key, "source": V.source_name(r["src"]["value"]), "score": float(r["score"]["value"]),
                  "model": V.model_name(r["model"]["value"])}
        if "box" in r:
            page["images"].append({**common, "box": list(parse_box(r["box"]["value"])),
                                   "file": r.get("file", {}).get("value")})
        elif "sentence" in r:
            span = [int(r["cs"]["value"]), int(r["ce"]["value"])] if "cs" in r and "ce" in r else None
            page["sentences"].append({**common, "text": r["sentence"]["value"], "span": span,
                                      "mention_text": r.get("text", {}).get("value")})


def mention_crop(store, key: str) -> tuple[str, tuple[float, float, float, float]] | None:
    """(image file name as registered by the mention's source, normalised box) of an image mention, or None
    when the graph holds no such image mention."""
    if not MENTION_KEY.match(key):
        return None
    q = Q.PREFIX + f"""SELECT ?file ?box WHERE {{ {iri(V.DATA + 'mention/' + key)} a kg:Mention ; kg:box ?box ;
      prov:wasDerivedFrom ?src . ?src a kg:Image ; kg:fileName ?file }} ORDER BY ?file LIMIT 1"""
    rows = store.query(q).rows
    if not rows:
        return None
    return rows[0]["file"]["value"], parse_box(rows[0]["box"]["value"])


def graph_summary(store) -> dict:
    """Counts for the page header: entities, sources by kind, statements."""
    q = Q.PREFIX + """SELECT ?kind (COUNT(DISTINCT ?x) AS ?n) WHERE {
      { ?x a kg:Entity . BIND("entities" AS ?kind) }
      UNION { GRAPH ?x { ?x a kg:Image } BIND("images" AS ?kind) }
      UNION { GRAPH ?x { ?x a kg:Caption } BIND("captions" AS ?kind) }
      UNION { ?x a kg:Statement . BIND("statements" AS ?kind) } } GROUP BY ?kind"""
    out = {"entities": 0, "images": 0, "captions": 0, "statements": 0}
    for r in store.query(q).rows:
        out[r["kind"]["value"]] = int(r["n"]["value"])
    return out
