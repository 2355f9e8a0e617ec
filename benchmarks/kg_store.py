"""Knowledge-graph store at scale: bulk-load 1M quads (synthetic shapes-world scenes with full PROV-O
provenance, as `lingvis kg build` writes them) into the embedded pyoxigraph store and into an Oxigraph
server started here, then time typical SPARQL queries over the loaded graph (median of repeats).

Rows compare throughput with the issue's goal (100k triples/s embedded): ratio >= 1 meets it. Query rows
report milliseconds (reference: 1000 ms, i.e. ratio = 1000 / ms).

    python -m benchmarks.kg_store [--quick] [--triples 1000000]
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

GOAL = 100_000  # triples/s, embedded bulk load


def synthetic_docs(n_scenes: int, seed: int = 0):
    """Shapes-world scenes (image + one caption each) as the builder stores them."""
    from lingvis.kg.records import Entity, Mention, SourceDoc, Statement
    from lingvis.kg.vocab import COLOURS, SHAPE_TYPES, SIZES

    rng = random.Random(seed)
    for k in range(n_scenes):
        scene = f"scene_{k:07d}.png"
        ents = []
        for colour, shape in rng.sample([(c, s) for c in COLOURS for s in SHAPE_TYPES], 3):
            size = rng.choice(SIZES)
            ents.append(Entity(f"{scene}/{colour}-{shape}", shape, f"{size} {colour} {shape}",
                               {"colour": colour, "size": size}, scene=scene))
        sts, ms = [], []
        for i, e in enumerate(ents):
            box = (0.1 * i, 0.1, 0.1 * i + 0.2, 0.3)
            sts += [Statement(e.id, "type", e.type, scene, 0.99, "scene-graph", box=box),
                    Statement(e.id, "colour", e.attributes["colour"], scene, 0.98, "scene-graph", box=box,
                              literal=True)]
            ms.append(Mention(e.id, scene, box=box, score=0.97, model="scene-graph"))
        sts += [Statement(ents[0].id, "left_of", ents[1].id, scene, 0.95, "scene-graph"),
                Statement(ents[1].id, "right_of", ents[0].id, scene, 0.95, "scene-graph")]
        yield SourceDoc(scene, "image", file=scene, scene=scene, entities=ents, statements=sts, mentions=ms)
        text = f"a {ents[0].label} to the left of a {ents[1].label}"
        cap = f"caption:{k}"
        yield SourceDoc(cap, "caption", text=text, scene=scene, entities=ents[:2], statements=[
            Statement(ents[0].id, "left_of", ents[1].id, cap, 0.9, "rebel", span=(0, len(text)))],
            mentions=[Mention(ents[0].id, cap, ents[0].label, (2, 2 + len(ents[0].label)), None, 0.9, "link")])


def nquads_lines(n_quads: int) -> list[str]:
    from lingvis.kg.rdf import doc_quads

    lines: list[str] = []
    for doc in synthetic_docs(10**9):
        lines += doc_quads(doc)
        if len(lines) >= n_quads:
            return lines[:n_quads]
    return lines


def _median_ms(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1000


QUERIES = {
    "entity lookup (one entity's triples)":
        "SELECT ?p ?o WHERE { <%s> ?p ?o }",
    "count left_of triples": "PREFIX kg: <https://lingvis.dev/ns/kg#> "
                             "SELECT (COUNT(*) AS ?n) WHERE { ?s kg:left_of ?o }",
    "red circles left of something, with sources (LIMIT 20)":
        "PREFIX kg: <https://lingvis.dev/ns/kg#> PREFIX rdf: <http://www.w3.org/1999/02/22-rdf-syntax-ns#> "
        "PREFIX prov: <http://www.w3.org/ns/prov#> SELECT ?s ?o ?src WHERE { ?s a kg:circle ; kg:colour \"red\" ; "
        "kg:left_of ?o . ?st rdf:subject ?s ; rdf:predicate kg:left_of ; prov:wasDerivedFrom ?src } LIMIT 20",
}


def _query_rows(store, where: str, repeats: int, entity: str) -> list[dict]:
    rows = []
    for name, q in QUERIES.items():
        q = q % entity if "%s" in q else q
        if not store.query(q).rows:
            raise RuntimeError(f"benchmark query found nothing: {q}")
        ms = _median_ms(lambda: store.query(q), repeats)
        rows.append({"benchmark": f"kg SPARQL {where}: {name}", "lingvis": round(ms, 2), "reference": 1000.0,
                     "unit": "ms (median)", "ratio": round(1000.0 / ms, 1), "quads": len(store)})
    return rows


def run(quick: bool = False, n_quads: int | None = None) -> list[dict]:
    from lingvis.kg.oxigraph_server import oxigraph_binary, oxigraph_server
    from lingvis.kg.rdf import nquads
    from lingvis.kg.stores import open_store
    from lingvis.kg.vocab import entity_iri

    n_quads = n_quads or (100_000 if quick else 1_000_000)
    t0 = time.perf_counter()
    lines = nquads_lines(n_quads)
    gen_s = time.perf_counter() - t0
    data = nquads(lines)
    first = next(synthetic_docs(1))
    entity = entity_iri(first.entities[0].id)
    rows = [{"benchmark": f"kg records -> N-Quads text ({n_quads:,} quads)", "lingvis": round(n_quads / gen_s),
             "reference": GOAL, "unit": "quads/s", "ratio": round(n_quads / gen_s / GOAL, 2)}]
    repeats = 5 if quick else 20
    with tempfile.TemporaryDirectory() as tmp:
        for lenient in (False, True):  # IRIs validated / not (`kg import --bulk [--lenient]`), same data
            if lenient:
                store.close()
            store = open_store(Path(tmp) / f"embedded-{'lenient' if lenient else 'strict'}")
            t0, c0 = time.perf_counter(), time.process_time()
            store.load(data, "nq", bulk=True, lenient=lenient)
            store.flush()
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            rows.append({"benchmark": f"kg bulk load, embedded pyoxigraph{', lenient' if lenient else ''} "
                                      f"({n_quads:,} quads)",
                         "lingvis": round(n_quads / dt), "reference": GOAL, "unit": "triples/s",
                         "ratio": round(n_quads / dt / GOAL, 2), "seconds": round(dt, 2),
                         "cpu_seconds": round(cpu, 2), "triples_per_cpu_s": round(n_quads / cpu),
                         "quads": len(store)})
        rows += _query_rows(store, "embedded", repeats, entity)
        # the transactional path `kg build` uses: documents replace their graphs by SPARQL update
        n_docs = 2000 if quick else 20000
        docs = list(synthetic_docs(n_docs // 2, seed=1))
        fresh = open_store(Path(tmp) / "docs")
        t0 = time.perf_counter()
        fresh.add_docs(docs)
        dt = time.perf_counter() - t0
        rows.append({"benchmark": f"kg add_docs (atomic replace per source), embedded ({len(docs):,} docs)",
                     "lingvis": round(len(fresh) / dt), "reference": GOAL, "unit": "triples/s",
                     "ratio": round(len(fresh) / dt / GOAL, 2), "docs_per_s": round(len(docs) / dt)})
        store.close()
        fresh.close()
        if oxigraph_binary() is not None:
            with oxigraph_server(Path(tmp) / "server") as url:
                server = open_store(url)
                t0 = time.perf_counter()
                server.load(data, "nq", bulk=True, lenient=True)
                dt = time.perf_counter() - t0
                rows.append({"benchmark": f"kg bulk load, Oxigraph server over HTTP, lenient ({n_quads:,} quads)",
                             "lingvis": round(n_quads / dt), "reference": GOAL, "unit": "triples/s",
                             "ratio": round(n_quads / dt / GOAL, 2), "seconds": round(dt, 2)})
                rows += _query_rows(server, "server", repeats, entity)
                t0 = time.perf_counter()
                server.add_docs(docs)
                dt = time.perf_counter() - t0
                added = len(server) - n_quads
                rows.append({"benchmark": f"kg add_docs (atomic replace per source), server ({len(docs):,} docs)",
                             "lingvis": round(added / dt), "reference": GOAL, "unit": "triples/s",
                             "ratio": round(added / dt / GOAL, 2), "docs_per_s": round(len(docs) / dt)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="100k quads instead of 1M")
    p.add_argument("--triples", type=int, help="number of quads to bulk-load")
    a = p.parse_args()
    for r in run(a.quick, a.triples):
        print(r, flush=True)


if __name__ == "__main__":
    main()
