"""/v1/kg/sparql: the SPARQL 1.1 Protocol over a knowledge graph, read-only unless updates are allowed, with
time and result limits."""
from __future__ import annotations

import urllib.parse

import pytest

pytest.importorskip("pyoxigraph")

from fastapi.testclient import TestClient  # noqa: E402

from lingvis.kg.records import Entity, SourceDoc, Statement  # noqa: E402
from lingvis.kg.stores import open_store  # noqa: E402
from lingvis.serve import ServeConfig, create_app  # noqa: E402
from lingvis.serve.routes_kg import KGEndpointConfig  # noqa: E402

KG = "PREFIX kg: <https://lingvis.dev/ns/kg#> "


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("kg") / "graph"
    ents = [Entity(f"s/e{i}", "circle", f"circle {i}", {"colour": "red"}, scene="s") for i in range(30)]
    sts = [Statement(ents[i].id, "left_of", ents[i + 1].id, "s.png", 0.9, "sg") for i in range(29)]
    with open_store(path) as s:
        s.add_docs([SourceDoc("s.png", "image", entities=ents, statements=sts)])
    return path


def _client(graph_dir, **kw):
    cfg = ServeConfig(kg=KGEndpointConfig(str(graph_dir), **kw))
    return TestClient(create_app([], cfg))


def test_get_post_and_form_queries(graph_dir):
    with _client(graph_dir) as c:
        q = KG + "SELECT (COUNT(*) AS ?n) WHERE { ?s kg:left_of ?o }"
        r = c.get("/v1/kg/sparql", params={"query": q})
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/sparql-results+json")
        assert r.json()["results"]["bindings"][0]["n"]["value"] == "29"
        r = c.post("/v1/kg/sparql", content=q, headers={"Content-Type": "application/sparql-query"})
        assert r.json()["results"]["bindings"][0]["n"]["value"] == "29"
        r = c.post("/v1/kg/sparql", content=urllib.parse.urlencode({"query": "ASK { ?s ?p ?o }"}),
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.json() == {"head": {}, "boolean": True}
        r = c.get("/v1/kg/sparql", params={"query": KG + "CONSTRUCT { ?s kg:left_of ?o } WHERE { ?s kg:left_of ?o }"})
        assert r.headers["content-type"].startswith("application/n-triples") and r.text.count("\n") == 29


def test_result_limit_and_bad_queries(graph_dir):
    with _client(graph_dir, max_results=5) as c:
        r = c.get("/v1/kg/sparql", params={"query": KG + "SELECT ?s WHERE { ?s kg:left_of ?o }"})
        assert len(r.json()["results"]["bindings"]) == 5 and r.json()["truncated"] is True
        assert r.headers["x-lingvis-truncated"] == "true"
        r = c.get("/v1/kg/sparql", params={"query": "SELECT WHERE {"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_sparql"
        assert c.get("/v1/kg/sparql").status_code == 400
        r = c.post("/v1/kg/sparql", content="x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415


def test_updates_refused_unless_allowed(graph_dir, tmp_path):
    upd = "INSERT DATA { <http://x/a> <http://x/b> <http://x/c> }"
    with _client(graph_dir) as c:
        r = c.post("/v1/kg/sparql", content=upd, headers={"Content-Type": "application/sparql-update"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "read_only"
        r = c.post("/v1/kg/sparql", content=urllib.parse.urlencode({"update": upd}),
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 403
    import shutil

    copy = tmp_path / "rw"
    shutil.copytree(graph_dir, copy)
    with _client(copy, allow_updates=True) as c:
        r = c.post("/v1/kg/sparql", content=upd, headers={"Content-Type": "application/sparql-update"})
        assert r.status_code == 204
        assert c.get("/v1/kg/sparql", params={"query": "ASK { <http://x/a> ?p ?o }"}).json()["boolean"] is True


def test_time_limit(graph_dir):
    slow = "SELECT (COUNT(*) AS ?n) WHERE { ?a ?p1 ?b . ?c ?p2 ?d . ?e ?p3 ?f }"
    with _client(graph_dir, timeout_s=0.05) as c:
        r = c.get("/v1/kg/sparql", params={"query": slow})
        assert r.status_code == 503 and r.json()["error"]["code"] == "query_timeout"


def test_api_key_and_missing_graph(graph_dir, tmp_path):
    cfg = ServeConfig(api_key="k", kg=KGEndpointConfig(str(graph_dir)))
    with TestClient(create_app([], cfg)) as c:
        assert c.get("/v1/kg/sparql", params={"query": "ASK {}"}).status_code == 401
        r = c.get("/v1/kg/sparql", params={"query": "ASK {}"}, headers={"Authorization": "Bearer k"})
        assert r.status_code == 200
    with pytest.raises(FileNotFoundError):
        create_app([], ServeConfig(kg=KGEndpointConfig(str(tmp_path / "nope"))))
