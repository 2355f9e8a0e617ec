"""`lingvis kg build | query | export | import | complete | ask`: multimodal knowledge graphs."""
from __future__ import annotations

import json
import sys

from .common import print_json

STORE_HELP = ("knowledge graph: a directory (embedded pyoxigraph store) or http://HOST:PORT of a SPARQL 1.1 "
              "server (Oxigraph layout: /query, /update, /store)")


def register(sub, groups) -> None:
    kg = sub.add_parser("kg", help="multimodal knowledge graphs: build, query, export, complete, ask",
                        description="Knowledge graphs from captions and images (triples with PROV-O provenance) in "
                        "an RDF store; SPARQL queries, exports, link prediction and question answering.")
    cmds = kg.add_subparsers(dest="kg_command", metavar="COMMAND")
    _register_query(cmds)
    _register_export(cmds)
    _register_import(cmds)
    kg.set_defaults(func=lambda args: kg.print_help() or 2)


def _register_query(cmds) -> None:
    q = cmds.add_parser("query", help="run a SPARQL query (over the union of all source graphs)",
                        description="Prints SELECT results as a table (IRIs shortened with the kg prefixes) or, "
                        "with --json, as SPARQL 1.1 JSON results; ASK prints true/false; CONSTRUCT prints N-Triples.")
    q.add_argument("kg", metavar="KG", help=STORE_HELP)
    q.add_argument("sparql", help="the query text, or @FILE to read it from a file")
    q.add_argument("--json", action="store_true", help="print SPARQL 1.1 JSON results instead of a table")
    q.add_argument("--limit", type=int, help="stop after this many result rows")
    q.add_argument("--timeout", type=float, help="give up after this many seconds")
    q.set_defaults(func=run_query)


def _register_export(cmds) -> None:
    e = cmds.add_parser("export", help="write the graph as JSONL, Turtle, N-Triples, N-Quads, TriG or JSON-LD",
                        description="jsonl: one object per line (sources, entities, triples with provenance, "
                        "mentions); ttl/nt: the union of all graphs; nq/trig/jsonld: one named graph per source.")
    e.add_argument("kg", metavar="KG", help=STORE_HELP)
    e.add_argument("--format", default="jsonl", choices=["jsonl", "ttl", "nt", "nq", "trig", "jsonld"],
                   help="output format (default jsonl)")
    e.add_argument("--out", help="output file (default: standard output)")
    e.set_defaults(func=run_export)


def _register_import(cmds) -> None:
    i = cmds.add_parser("import", help="load JSONL, Turtle, N-Triples, N-Quads, TriG or JSON-LD into a graph",
                        description="Adding the same file again adds nothing. Graph formats (ttl, nt) go into one "
                        "named graph (--graph, default: one named after the file).")
    i.add_argument("kg", metavar="KG", help=STORE_HELP)
    i.add_argument("files", nargs="+", help="files to load (format from the extension unless --format)")
    i.add_argument("--format", choices=["jsonl", "ttl", "nt", "nq", "trig", "jsonld"], help="format of the files")
    i.add_argument("--graph", help="named graph IRI for triples-only formats")
    i.set_defaults(func=run_import)


# ---- runners ---------------------------------------------------------------------------------------------

def _short(term: dict | None) -> str:
    from ..kg.vocab import PREFIXES

    if term is None:
        return ""
    v = term["value"]
    if term["type"] == "uri":
        for p, ns in sorted(PREFIXES.items(), key=lambda kv: -len(kv[1])):
            if v.startswith(ns):
                return f"{p}:{v[len(ns):]}"
        return f"<{v}>"
    if term["type"] == "bnode":
        return f"_:{v}"
    return v


def format_table(vars_: list[str], rows: list[dict]) -> str:
    cells = [[_short(r.get(v)) for v in vars_] for r in rows]
    widths = [max([len(v)] + [len(c[i]) for c in cells]) for i, v in enumerate(vars_)]
    line = lambda vals: "  ".join(x.ljust(w) for x, w in zip(vals, widths)).rstrip()  # noqa: E731
    out = [line(vars_), line(["-" * w for w in widths])] + [line(c) for c in cells]
    return "\n".join(out)


def _read_query(text: str) -> str:
    if text.startswith("@"):
        from pathlib import Path

        p = Path(text[1:])
        if not p.is_file():
            raise FileNotFoundError(f"query file not found: {p}")
        return p.read_text(encoding="utf-8")
    return text


def run_query(args) -> int:
    from ..kg.store import open_store

    with open_store(args.kg, read_only=True) as store:
        res = store.query(_read_query(args.sparql), timeout=args.timeout, limit=args.limit)
    if args.json:
        print(json.dumps(res.to_json(), ensure_ascii=False))
    elif res.kind == "boolean":
        print("true" if res.boolean else "false")
    elif res.kind == "graph":
        sys.stdout.write(res.graph)
    else:
        print(format_table(res.vars, res.rows))
        print(f"({len(res.rows)} row{'s' if len(res.rows) != 1 else ''}{', truncated' if res.truncated else ''})",
              file=sys.stderr)
    return 0


def run_export(args) -> int:
    import tempfile
    from pathlib import Path

    from ..kg.store import open_store

    with open_store(args.kg, read_only=True) as store:
        if args.out:
            print_json({"out": str(store.export(args.out, args.format)), "format": args.format})
            return 0
        with tempfile.TemporaryDirectory() as tmp:
            path = store.export(Path(tmp) / f"kg.{args.format}", args.format)
            sys.stdout.write(path.read_text(encoding="utf-8"))
    return 0


def run_import(args) -> int:
    from ..kg.store import open_store

    with open_store(args.kg) as store:
        before = len(store)
        for f in args.files:
            store.import_file(f, args.format, args.graph)
        print_json({"kg": store.location, "files": len(args.files), "quads_before": before, "quads": len(store)})
    return 0
