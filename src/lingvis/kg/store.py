"""The graph store: one interface over an embedded pyoxigraph store on disk (`EmbeddedStore(dir)`) and a
SPARQL 1.1 server (`HTTPStore("http://host:port")`, see store_http.py). `stores.open_store(spec)` picks by the
spec. Queries see the union of all named graphs as their default graph; each source document is one named
graph, replaced as a whole when it is added again (one atomic SPARQL update), so re-adding a document never
duplicates an entity or a triple."""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .. import _optional
from . import queries as Q
from . import rdf
from . import vocab as V
from .records import Entity, Mention, SourceDoc, Statement

# export/import formats: name -> (pyoxigraph RdfFormat attribute, MIME type, holds named graphs)
FORMATS = {
    "ttl": ("TURTLE", "text/turtle", False),
    "nt": ("N_TRIPLES", "application/n-triples", False),
    "nq": ("N_QUADS", "application/n-quads", True),
    "trig": ("TRIG", "application/trig", True),
    "jsonld": ("JSON_LD", "application/ld+json", True),
}
ALIASES = {"turtle": "ttl", "ntriples": "nt", "n-triples": "nt", "nquads": "nq", "n-quads": "nq",
           "json-ld": "jsonld"}


def format_name(name: str) -> str:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in FORMATS:
        raise ValueError(f"unknown RDF format {name!r}; choose from {sorted(FORMATS)}")
    return key


def format_from_path(path: str | Path) -> str:
    ext = Path(path).suffix.lstrip(".").lower()
    ext = {"json": "jsonld", "n3": "ttl"}.get(ext, ext)
    try:
        return format_name(ext)
    except ValueError:
        raise ValueError(f"cannot tell the RDF format of {path} from its extension; pass a format "
                         f"({sorted(FORMATS)})") from None


class QueryTimeout(TimeoutError):
    """A query ran past its time limit."""


class StoreError(RuntimeError):
    """The store refused a request (server error, bad query, locked directory ...)."""


@dataclass
class QueryResult:
    """A SPARQL result: `kind` is 'bindings' (SELECT: `vars` + `rows` of SPARQL-JSON terms), 'boolean' (ASK)
    or 'graph' (CONSTRUCT/DESCRIBE: N-Triples text in `graph`). `truncated` when a row limit cut it."""
    kind: str
    vars: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    boolean: bool | None = None
    graph: str = ""
    truncated: bool = False

    def to_json(self) -> dict:
        """The W3C SPARQL 1.1 Query Results JSON (graphs as {"ntriples": ...})."""
        if self.kind == "boolean":
            return {"head": {}, "boolean": bool(self.boolean)}
        if self.kind == "graph":
            return {"ntriples": self.graph}
        return {"head": {"vars": list(self.vars)}, "results": {"bindings": self.rows}}

    def values(self) -> list[dict]:
        """SELECT rows as {var: python value} (unbound variables are None)."""
        return [{v: rdf.term_value(r.get(v)) for v in self.vars} for r in self.rows]

    def table(self) -> str:
        """SELECT rows as an aligned text table, IRIs shortened with the kg prefixes (kg:, kgd:, rdf: ...)."""
        cells = [[_short(r.get(v)) for v in self.vars] for r in self.rows]
        widths = [max([len(v)] + [len(c[i]) for c in cells]) for i, v in enumerate(self.vars)]

        def line(vals):
            return "  ".join(x.ljust(w) for x, w in zip(vals, widths)).rstrip()

        return "\n".join([line(self.vars), line(["-" * w for w in widths])] + [line(c) for c in cells])


def _short(term: dict | None) -> str:
    if term is None:
        return ""
    v = term["value"]
    if term["type"] == "uri":
        for p, ns in sorted(V.PREFIXES.items(), key=lambda kv: -len(kv[1])):
            if v.startswith(ns):
                return f"{p}:{v[len(ns):]}"
        return f"<{v}>"
    if term["type"] == "bnode":
        return f"_:{v}"
    return v


class KGStore(ABC):
    """What both stores do. Subclasses implement the five primitives; records go in and out through
    SPARQL, so both behave identically."""

    location: str

    # ---- primitives ---------------------------------------------------------------------------------------
    @abstractmethod
    def query(self, sparql: str, *, timeout: float | None = None, limit: int | None = None) -> QueryResult:
        """Run a SPARQL query over the union of all graphs."""

    @abstractmethod
    def update(self, sparql: str) -> None:
        """Run a SPARQL update (one transaction)."""

    @abstractmethod
    def load(self, data: bytes, fmt: str, graph: str | None = None, bulk: bool = False,
             lenient: bool = False) -> None:
        """Add RDF in `fmt` (see FORMATS); triples-only formats go into `graph` (default graph if None).
        `bulk`: the fastest path for big loads (not transactional). `lenient`: skip IRI validation (faster; for
        trusted data such as this library's own exports)."""

    @abstractmethod
    def dump(self, fmt: str) -> bytes:
        """The whole dataset (graph formats: the union of all graphs, without duplicates)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of quads."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- records ------------------------------------------------------------------------------------------
    def ensure_vocabulary(self) -> None:
        """Write the vocabulary graph (idempotent)."""
        self.replace_graphs({V.VOCAB_GRAPH: rdf.vocabulary_quads()})

    def replace_graphs(self, graphs: dict[str, list[str]]) -> None:
        """Replace each named graph by its N-Quads lines in one atomic update."""
        if not graphs:
            return
        drops = "".join(f"DROP SILENT GRAPH {rdf.iri(g)} ;\n" for g in graphs)
        blocks = []
        for g, lines in graphs.items():
            body = "\n".join(line[:line.rindex(" <", 0, len(line) - 2)] + " ." for line in lines)
            blocks.append(f"GRAPH {rdf.iri(g)} {{\n{body}\n}}")
        self.update(drops + "INSERT DATA {\n" + "\n".join(blocks) + "\n}")

    def add_docs(self, docs: Iterable[SourceDoc], batch: int = 256) -> int:
        """Store source documents (each replaces its named graph); returns the number of documents."""
        n, pending = 0, {}
        for doc in docs:
            pending[V.source_iri(doc.name)] = rdf.doc_quads(doc)
            n += 1
            if len(pending) >= batch:
                self.replace_graphs(pending)
                pending = {}
        self.replace_graphs(pending)
        return n

    def remove_source(self, source: str) -> None:
        self.update(f"DROP SILENT GRAPH {rdf.iri(V.source_iri(source))}")

    def sources(self) -> list[dict]:
        rows = self.query(Q.SOURCES).rows
        return [{"source": V.source_name(r["src"]["value"]), "kind": V.local_name(r["kind"]["value"]),
                 **{k: r[k]["value"] for k in ("text", "file", "scene") if k in r}} for r in rows]

    def source_docs(self) -> list[SourceDoc]:
        """The stored source documents' descriptions (kind, text, file, scene; no records)."""
        kinds = {"Image": "image", "Caption": "caption"}
        return [SourceDoc(d["source"], kinds.get(d["kind"], "text"), d.get("text"), d.get("file"), d.get("scene"))
                for d in sorted(self.sources(), key=lambda d: d["source"])]

    def statements(self) -> list[Statement]:
        out = [rdf.statement_from_row(r) for r in self.query(Q.STATEMENTS).rows]
        return sorted(out, key=lambda s: (s.source, s.subject, s.predicate, s.object, s.span or (), s.box or ()))

    def entities(self) -> list[Entity]:
        ents: dict[str, Entity] = {}
        for r in self.query(Q.ENTITIES).rows:
            eid = V.entity_id(r["e"]["value"])
            e = ents.setdefault(eid, Entity(eid, "Entity"))
            if "type" in r and (e.type == "Entity" or V.local_name(r["type"]["value"]) < e.type):
                e.type = V.local_name(r["type"]["value"])  # several types: the first by name (deterministic)
            if "label" in r and (not e.label or r["label"]["value"] < e.label):
                e.label = r["label"]["value"]
            if "scene" in r:
                e.scene = r["scene"]["value"]
        for r in self.query(Q.ENTITY_ATTRIBUTES).rows:
            e = ents.get(V.entity_id(r["e"]["value"]))
            name = V.local_name(r["p"]["value"])
            if e is not None and (name not in e.attributes or r["v"]["value"] < e.attributes[name]):
                e.attributes[name] = r["v"]["value"]
        for r in self.query(Q.ENTITY_SOURCES).rows:
            e = ents.get(V.entity_id(r["e"]["value"]))
            if e is not None:
                e.sources.append(V.source_name(r["src"]["value"]))
        for e in ents.values():
            e.sources = sorted(set(e.sources))
            e.attributes = dict(sorted(e.attributes.items()))
        return sorted(ents.values(), key=lambda e: e.id)

    def mentions(self) -> list[Mention]:
        out = []
        for r in self.query(Q.MENTIONS).rows:
            span = (int(r["cs"]["value"]), int(r["ce"]["value"])) if "cs" in r and "ce" in r else None
            out.append(Mention(V.entity_id(r["e"]["value"]), V.source_name(r["src"]["value"]),
                               r["text"]["value"] if "text" in r else None, span,
                               rdf.parse_box(r.get("box", {}).get("value")), float(r["score"]["value"]),
                               V.model_name(r["model"]["value"])))
        return sorted(out, key=lambda m: (m.source, m.entity, m.span or (), m.box or ()))

    # ---- files --------------------------------------------------------------------------------------------
    def export(self, path: str | Path, fmt: str | None = None) -> Path:
        """Write the graph to `path` in `fmt` (default: from the extension), atomically; 'jsonl' writes the
        records exchange format."""
        from ..io import atomic_write_text

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if (fmt or path.suffix.lstrip(".")).lower() == "jsonl":
            from .records import write_jsonl

            return write_jsonl(path, self.entities(), self.statements(), self.mentions(), self.source_docs())
        data = self.dump(format_name(fmt) if fmt else format_from_path(path))
        atomic_write_text(path, data.decode("utf-8"))
        return path

    def import_file(self, path: str | Path, fmt: str | None = None, graph: str | None = None, bulk: bool = False,
                    lenient: bool = False) -> None:
        """Load a file: JSONL records (grouped into their source graphs), a dataset format (graphs kept), or a
        graph format into `graph` (default: a graph named after the file). `bulk`, `lenient`: see `load`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"file to import not found: {path}")
        if (fmt or path.suffix.lstrip(".")).lower() == "jsonl":
            from .records import docs_from_records, read_jsonl

            self.add_docs(docs_from_records(*read_jsonl(path)))
            return
        name = format_name(fmt) if fmt else format_from_path(path)
        target = None if FORMATS[name][2] else (graph or V.source_iri("import:" + path.name))
        try:
            self.load(path.read_bytes(), name, target, bulk=bulk, lenient=lenient)
        except (SyntaxError, ValueError) as e:  # the embedded parser's error, or the server's 400
            raise ValueError(f"{path}: not valid {name}: {e}") from e


# ---- embedded ------------------------------------------------------------------------------------------------

def _term_json(t) -> dict | None:
    ox = _optional.require("pyoxigraph", "the knowledge-graph store")
    if t is None:
        return None
    if isinstance(t, ox.NamedNode):
        return {"type": "uri", "value": t.value}
    if isinstance(t, ox.BlankNode):
        return {"type": "bnode", "value": t.value}
    if isinstance(t, ox.Literal):
        out = {"type": "literal", "value": t.value}
        if t.language:
            out["xml:lang"] = t.language
        elif t.datatype.value != V.XSD + "string":
            out["datatype"] = t.datatype.value
        return out
    return {"type": "triple", "value": str(t)}


class EmbeddedStore(KGStore):
    """pyoxigraph `Store` on disk (RocksDB; one writer process at a time) or in memory (`path=None`)."""

    def __init__(self, path: str | Path | None = None, read_only: bool = False):
        ox = _optional.require("pyoxigraph", "the knowledge-graph store")
        self._ox = ox
        self.location = str(path) if path else ":memory:"
        try:
            if path is None:
                self._store = ox.Store()
            elif read_only:
                if not Path(path).is_dir():
                    raise FileNotFoundError(f"knowledge graph not found: {path}")
                self._store = ox.Store.read_only(str(path))
            else:
                Path(path).mkdir(parents=True, exist_ok=True)
                self._store = ox.Store(str(path))
        except OSError as e:
            raise StoreError(f"cannot open the knowledge graph at {path}: {e}") from e
        self.read_only = read_only

    def _rdf_format(self, fmt: str):
        return getattr(self._ox.RdfFormat, FORMATS[format_name(fmt)][0])

    def query(self, sparql: str, *, timeout: float | None = None, limit: int | None = None) -> QueryResult:
        cancel = threading.Event()

        def run() -> QueryResult:
            try:
                res = self._store.query(sparql, use_default_graph_as_union=True)
            except SyntaxError as e:
                raise ValueError(f"invalid SPARQL: {e}") from e
            if isinstance(res, self._ox.QueryBoolean):
                return QueryResult("boolean", boolean=bool(res))
            if isinstance(res, self._ox.QueryTriples):
                triples = []
                for t in res:
                    if cancel.is_set() or (limit is not None and len(triples) >= limit):
                        return QueryResult("graph", graph=self._ox.serialize(triples, format=self._ox.RdfFormat.N_TRIPLES).decode(),
                                           truncated=True)
                    triples.append(t)
                return QueryResult("graph", graph=self._ox.serialize(triples, format=self._ox.RdfFormat.N_TRIPLES).decode()
                                   if triples else "")
            names = [v.value for v in res.variables]
            rows, truncated = [], False
            for sol in res:
                if cancel.is_set():
                    break
                if limit is not None and len(rows) >= limit:
                    truncated = True
                    break
                rows.append({n: j for n in names if (j := _term_json(sol[n])) is not None})
            return QueryResult("bindings", names, rows, truncated=truncated)

        if timeout is None:
            return run()
        return _with_deadline(run, timeout, cancel)

    def update(self, sparql: str) -> None:
        if self.read_only:
            raise StoreError(f"{self.location} is open read-only: updates are refused")
        try:
            self._store.update(sparql)
        except SyntaxError as e:
            raise ValueError(f"invalid SPARQL update: {e}") from e

    def load(self, data: bytes, fmt: str, graph: str | None = None, bulk: bool = False,
             lenient: bool = False) -> None:
        if self.read_only:
            raise StoreError(f"{self.location} is open read-only: loading is refused")
        kw = {"to_graph": self._ox.NamedNode(graph)} if graph else {}
        kw["lenient"] = lenient
        (self._store.bulk_load if bulk else self._store.load)(data, self._rdf_format(fmt), **kw)

    def dump(self, fmt: str) -> bytes:
        name = format_name(fmt)
        if FORMATS[name][2]:
            return self._store.dump(format=self._rdf_format(name))
        triples = self._store.query("CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }", use_default_graph_as_union=True)
        kw = {"prefixes": dict(V.PREFIXES)} if name == "ttl" else {}
        return self._ox.serialize(triples, format=self._rdf_format(name), **kw) or b""

    def __len__(self) -> int:
        return len(self._store)

    def flush(self) -> None:
        if not self.read_only and self.location != ":memory:":
            self._store.flush()

    def optimize(self) -> None:
        self._store.optimize()

    def close(self) -> None:
        self.flush()
        self._store = None


def _with_deadline(fn, timeout: float, cancel: threading.Event):
    """Run `fn` in a worker thread; past `timeout` seconds set `cancel` (the query stops at its next row)
    and raise QueryTimeout."""
    box: dict = {}

    def work():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001  re-raised in the caller
            box["error"] = e

    t = threading.Thread(target=work, daemon=True, name="sparql-query")
    t0 = time.perf_counter()
    t.start()
    t.join(timeout)
    if t.is_alive():
        cancel.set()
        raise QueryTimeout(f"query ran past its {timeout:g} s limit ({time.perf_counter() - t0:.2f} s)")
    if "error" in box:
        raise box["error"]
    return box["value"]
