"""Store behaviour, identical on the embedded store and on the Oxigraph server."""
from __future__ import annotations

import json

import pytest

from lingvis.kg import vocab as V
from lingvis.kg.records import Entity, Mention, SourceDoc, Statement, read_jsonl
from lingvis.kg.store import QueryTimeout, StoreError
from lingvis.kg.stores import open_store

KG = "PREFIX kg: <https://lingvis.dev/ns/kg#>\n"


def scene_docs(suffix: str = "") -> list[SourceDoc]:
    red = Entity("s1/red-circle", "circle", "small red circle", {"colour": "red", "size": "small"}, scene="s1")
    blue = Entity("s1/blue-square", "square", "large blue square", {"colour": "blue", "size": "large"}, scene="s1")
    image = SourceDoc("s1.png", "image", file="s1.png", scene="s1", entities=[red, blue], statements=[
        Statement(red.id, "left_of", blue.id, "s1.png", 0.9, "sg", box=(0.1, 0.2, 0.3, 0.4)),
        Statement(blue.id, "right_of", red.id, "s1.png", 0.8, "sg", box=(0.5, 0.2, 0.9, 0.6)),
        Statement(red.id, "colour", "red", "s1.png", 0.99, "sg", literal=True),
        Statement(red.id, "type", "circle", "s1.png", 0.97, "sg")],
        mentions=[Mention(red.id, "s1.png", box=(0.1, 0.2, 0.3, 0.4), score=0.8, model="sg")])
    text = "a small red circle to the left of a large blue square" + suffix
    caption = SourceDoc("caption:1", "caption", text=text, scene="s1", entities=[red, blue], statements=[
        Statement(red.id, "left_of", blue.id, "caption:1", 0.95, "rebel", span=(0, len(text)))],
        mentions=[Mention(red.id, "caption:1", "small red circle", (2, 18), None, 0.9, "link"),
                  Mention(blue.id, "caption:1", "large blue square", (36, 53), None, 0.85, "link")])
    return [image, caption]


def test_records_round_trip_through_the_store(store):
    store.add_docs(scene_docs())
    ents = {e.id: e for e in store.entities()}
    assert set(ents) == {"s1/red-circle", "s1/blue-square"}
    red = ents["s1/red-circle"]
    assert (red.type, red.label, red.attributes, red.sources, red.scene) == (
        "circle", "small red circle", {"colour": "red", "size": "small"}, ["caption:1", "s1.png"], "s1")
    sts = store.statements()
    assert len(sts) == 5
    left = [s for s in sts if s.predicate == "left_of"]
    assert {(s.source, s.model, s.confidence, s.span, s.box) for s in left} == {
        ("s1.png", "sg", 0.9, None, (0.1, 0.2, 0.3, 0.4)),
        ("caption:1", "rebel", 0.95, (0, 53), None)}
    typ = next(s for s in sts if s.predicate == "type")
    assert (typ.object, typ.literal) == ("circle", True)
    ms = store.mentions()
    assert [(m.source, m.text, m.span) for m in ms] == [
        ("caption:1", "large blue square", (36, 53)), ("caption:1", "small red circle", (2, 18)),
        ("s1.png", None, None)]
    kinds = {s["source"]: s["kind"] for s in store.sources()}
    assert kinds == {"s1.png": "Image", "caption:1": "Caption"}


def test_adding_again_never_duplicates(store):
    store.add_docs(scene_docs())
    n = len(store)
    entities, statements = store.entities(), store.statements()
    store.add_docs(scene_docs())
    assert len(store) == n
    assert store.entities() == entities and store.statements() == statements
    # a changed document replaces its own graph only: the triple it shares with the image stays single
    store.add_docs(scene_docs(suffix=" .")[1:])
    assert len(store.statements()) == len(statements)
    q = KG + "SELECT (COUNT(DISTINCT ?s) AS ?n) WHERE { ?s kg:left_of ?o }"
    assert store.query(q).values() == [{"n": 1}]


def test_provenance_is_prov_o(store):
    store.add_docs(scene_docs())
    q = KG + """PREFIX prov: <http://www.w3.org/ns/prov#>
    PREFIX rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#>
    SELECT ?src ?model ?conf WHERE {
      ?st rdf:predicate kg:left_of ; prov:wasDerivedFrom ?src ; prov:wasAttributedTo ?model ; kg:confidence ?conf .
      ?model a prov:SoftwareAgent } ORDER BY ?src"""
    rows = store.query(q).values()
    assert rows == [{"src": V.source_iri("caption:1"), "model": V.model_iri("rebel"), "conf": 0.95},
                    {"src": V.source_iri("s1.png"), "model": V.model_iri("sg"), "conf": 0.9}]
    # one named graph per source
    g = store.query("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } } ORDER BY ?g").values()
    assert [r["g"] for r in g] == [V.source_iri("caption:1"), V.source_iri("s1.png")]


def test_vocabulary_maps_to_schema_org_and_wikidata(store):
    store.ensure_vocabulary()
    store.ensure_vocabulary()
    q = """PREFIX owl: <http://www.w3.org/2002/07/owl#> PREFIX kg: <https://lingvis.dev/ns/kg#>
    SELECT ?m WHERE { kg:colour owl:equivalentProperty ?m } ORDER BY ?m"""
    assert [r["m"] for r in store.query(q).values()] == ["http://www.wikidata.org/prop/direct/P462",
                                                         "https://schema.org/color"]
    q = "PREFIX skos: <http://www.w3.org/2004/02/skos/core#> ASK { <%s> skos:exactMatch <%sQ17278> }" % (
        V.cls("circle"), V.WD)
    r = store.query(q)
    assert r.kind == "boolean" and r.boolean


def test_query_kinds_limits_and_errors(store):
    store.add_docs(scene_docs())
    r = store.query(KG + "SELECT ?s WHERE { ?s a kg:Entity }", limit=1)
    assert r.kind == "bindings" and len(r.rows) == 1 and r.truncated
    assert store.query(KG + "SELECT DISTINCT ?s WHERE { ?s a kg:Entity }", limit=5).truncated is False
    g = store.query(KG + "CONSTRUCT { ?s kg:left_of ?o } WHERE { ?s kg:left_of ?o }")
    assert g.kind == "graph" and g.graph.strip().count("\n") == 0 and "left_of" in g.graph
    assert json.loads(json.dumps(r.to_json()))["head"]["vars"] == ["s"]
    with pytest.raises(ValueError):
        store.query("SELECT WHERE {")


@pytest.mark.parametrize("fmt", ["ttl", "nt", "nq", "trig", "jsonld", "jsonl"])
def test_export_import_round_trip(store, tmp_path, fmt):
    store.add_docs(scene_docs())
    path = store.export(tmp_path / f"kg.{fmt}")
    fresh = open_store(tmp_path / "fresh")
    fresh.import_file(path)
    assert fresh.statements() == store.statements()
    assert fresh.mentions() == store.mentions()
    ents = fresh.entities()
    assert [(e.id, e.type, e.label, e.attributes, e.sources) for e in ents] == [
        (e.id, e.type, e.label, e.attributes, e.sources) for e in store.entities()]
    if fmt in ("nq", "trig", "jsonld", "jsonl"):  # dataset formats keep one graph per source
        assert len(fresh) == len(store)
    fresh.import_file(path)  # importing twice adds nothing
    assert fresh.statements() == store.statements()
    fresh.close()


def test_bulk_and_lenient_import(store, tmp_path):
    src = open_store(tmp_path / "src")
    src.add_docs(scene_docs())
    path = src.export(tmp_path / "kg.nq")
    store.import_file(path, bulk=True, lenient=True)  # the bulk loader, IRIs unchecked (trusted: our own export)
    assert len(store) == len(src) and store.statements() == src.statements()
    bad = tmp_path / "bad.nt"
    bad.write_text("<http://example.org/a b> <http://example.org/p> <http://example.org/o> .\n")
    with pytest.raises(ValueError, match="bad.nt: not valid nt"):
        store.import_file(bad, bulk=True)  # strict by default
    assert len(store) == len(src)
    src.close()


def test_jsonl_shape(store, tmp_path):
    store.add_docs(scene_docs())
    path = store.export(tmp_path / "kg.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    ent = next(x for x in lines if x.get("id") == "s1/red-circle")
    assert {"id", "type", "label", "attributes", "sources"} <= set(ent)
    triple = next(x for x in lines if x.get("predicate") == "left_of")
    assert {"subject", "predicate", "object", "source", "confidence"} <= set(triple)
    entities, statements, mentions, sources = read_jsonl(path)
    assert len(entities) == 2 and len(statements) == 5 and len(mentions) == 3
    assert {(d.name, d.kind, d.text) for d in sources} == {
        ("caption:1", "caption", "a small red circle to the left of a large blue square"), ("s1.png", "image", None)}


def test_jsonl_errors_name_the_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"id": "a", "type": "circle"}\n{"subject": "a", "predicate": "left_of"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: missing field 'object'"):
        read_jsonl(p)
    p.write_text('{"subject": "a", "predicate": "p", "object": "b", "source": "x", "confidence": 3}\n')
    with pytest.raises(ValueError, match="confidence must be in"):
        read_jsonl(p)


def test_read_only_store_refuses_writes(tmp_path):
    s = open_store(tmp_path / "kg")
    s.add_docs(scene_docs())
    s.close()
    ro = open_store(tmp_path / "kg", read_only=True)
    assert len(ro.statements()) == 5
    with pytest.raises(StoreError, match="read-only"):
        ro.update("CLEAR ALL")
    with pytest.raises(FileNotFoundError):
        open_store(tmp_path / "missing", read_only=True)


def test_embedded_query_timeout(tmp_path):
    s = open_store(None)
    s.load(b"".join(b"<http://e/%d> <http://p> <http://e/%d> .\n" % (i, i + 1) for i in range(300)), "nt")
    with pytest.raises(QueryTimeout):  # a transitive path over a 300-node chain, cross-joined: seconds of work
        s.query("SELECT (COUNT(*) AS ?n) WHERE { ?a <http://p>+ ?b . ?c <http://p>+ ?d }", timeout=0.05)


def test_unreachable_server_is_named():
    s = open_store("http://127.0.0.1:9")
    with pytest.raises(StoreError, match="cannot reach the SPARQL server"):
        s.query("ASK {}")
