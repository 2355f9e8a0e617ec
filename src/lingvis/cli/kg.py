"""`lingvis kg build | query | export | import | train-* | complete | ask | serve`: multimodal knowledge graphs."""
from __future__ import annotations

from .common import add_train_args
from .kg_run import (
    run_ask,
    run_build,
    run_complete,
    run_export,
    run_import,
    run_query,
    run_serve,
    run_train_scenes,
    run_train_tagger,
    run_train_text,
)

STORE_HELP = ("knowledge graph: a directory (embedded pyoxigraph store) or http://HOST:PORT of a SPARQL 1.1 "
              "server (Oxigraph layout: /query, /update, /store)")


def register(sub, groups) -> None:
    kg = sub.add_parser("kg", help="multimodal knowledge graphs: build, query, export, complete, ask",
                        description="Knowledge graphs from captions and images (triples with PROV-O provenance) in "
                        "an RDF store; SPARQL queries, exports, link prediction and question answering.")
    cmds = kg.add_subparsers(dest="kg_command", metavar="COMMAND")
    _register_build(cmds)
    _register_query(cmds)
    _register_export(cmds)
    _register_import(cmds)
    _register_train_text(cmds)
    _register_train_scenes(cmds)
    _register_train_tagger(cmds)
    _register_complete(cmds)
    _register_ask(cmds)
    _register_serve(cmds)
    kg.set_defaults(func=lambda args: kg.print_help() or 2)


def _register_build(cmds) -> None:
    b = cmds.add_parser("build", help="build (or extend) a graph from COCO captions and/or a folder of images",
                        description="Each image and each caption becomes one named graph; caption mentions are "
                        "linked to image objects and to entities already in the graph, so building again or "
                        "adding documents later never duplicates an entity or a triple.")
    b.add_argument("--captions", help="COCO captions JSON (images by file_name; without --images: text only)")
    b.add_argument("--images", help="folder of images (the scenes; without --captions: images only)")
    b.add_argument("--out", help="graph directory (embedded store)")
    b.add_argument("--store", help="http://HOST:PORT of a SPARQL 1.1 server to write to instead of --out")
    b.add_argument("--text-model", help="caption -> triples seq2seq run (lingvis kg train-text)")
    b.add_argument("--scene-model", help="image -> scene graph run (lingvis kg train-scenes)")
    b.add_argument("--clip", help="CLIP checkpoint: adds image-text similarity to entity linking")
    b.add_argument("--tagger", help="BERT mention tagger run (lingvis kg train-tagger): adds the caption mentions "
                   "the text model missed")
    b.add_argument("--train-models", metavar="DIR",
                   help="train the missing default models on the built-in shapes world into DIR/text and "
                   "DIR/scene (reused when already there)")
    b.add_argument("--train-minutes", type=float, default=5.0, help="time budget per model for --train-models")
    b.add_argument("--batch-size", type=int, default=64, help="scenes extracted together")
    b.add_argument("--link-threshold", type=float, default=0.5, help="lowest linking score that merges a mention")
    b.add_argument("--relation-threshold", type=float, default=0.5, help="lowest predicate probability kept")
    b.add_argument("--device", default="cpu", help="device for the models")
    b.set_defaults(func=run_build)


def _register_train_text(cmds) -> None:
    t = cmds.add_parser("train-text", help="train the caption/sentence -> typed triples seq2seq model",
                        description="REBEL-style linearised triples with entity types. --data: CONLL04/SpERT JSON "
                        "or JSONL sentences with triples; default: the built-in shapes captions.")
    add_train_args(t, max_steps=4000, batch_size=64, lr=1e-3, eval_every=500, warmup=100)
    t.set_defaults(preset="transformer-tiny")
    t.add_argument("--val-data", help="held-out sentences (default: a split of --data)")
    t.add_argument("--vocab-size", type=int, default=800, help="BPE vocabulary size of a new tokenizer")
    t.add_argument("--n-train", type=int, default=3000, help="built-in data: training scenes (4-5 captions each)")
    t.set_defaults(func=run_train_text)


def _register_train_scenes(cmds) -> None:
    t = cmds.add_parser("train-scenes", help="train the region scene-graph model (objects, attributes, predicates)",
                        description="--data: Visual Genome-style scene_graphs.json with --images; default: the "
                        "built-in shapes scenes.")
    add_train_args(t, max_steps=3000, batch_size=32, lr=2e-3, eval_every=250, warmup=50)
    t.set_defaults(preset="scene-graph-small")
    t.add_argument("--images", help="image folder for --data")
    t.add_argument("--n-train", type=int, default=4000, help="built-in data: training scenes")
    t.set_defaults(func=run_train_scenes)


def _register_train_tagger(cmds) -> None:
    t = cmds.add_parser("train-tagger", help="train the BERT entity-mention tagger (BIO tags from mention spans)",
                        description="Token classification over words; --data: CONLL04/SpERT JSON or JSONL sentences "
                        "with mention spans; default: the built-in shapes captions. --model fine-tunes a BERT "
                        "checkpoint (with its tokenizer); otherwise a WordPiece tokenizer is trained here.")
    add_train_args(t, max_steps=600, batch_size=32, lr=3e-3, eval_every=200, warmup=30)
    t.set_defaults(preset="bert-tiny")
    t.add_argument("--val-data", help="held-out sentences (default: a split of --data)")
    t.add_argument("--vocab-size", type=int, default=600, help="WordPiece vocabulary size of a new tokenizer")
    t.add_argument("--n-train", type=int, default=600, help="built-in data: training scenes (4-5 captions each)")
    t.set_defaults(func=run_train_tagger)


def _register_complete(cmds) -> None:
    c = cmds.add_parser("complete", help="link prediction on the graph (RotatE, TransE, ComplEx)",
                        description="Trains a KGE model on the graph's entity-to-entity triples (random "
                        "train/valid/test split) or on an FB15k-237-style folder (--data), reports filtered MRR "
                        "and Hits@1/3/10, and with --write N adds the N best new triples to the graph (named graph "
                        "'completion:kge-<model>', with their scores as confidence).")
    c.add_argument("kg", metavar="KG", nargs="?", help=STORE_HELP + " (omit with --data)")
    c.add_argument("--model", choices=["rotate", "transe", "complex"], default="rotate", help="scoring model")
    c.add_argument("--data", help="FB15k-237-style folder of train.txt, valid.txt, test.txt instead of a graph")
    c.add_argument("--out", help="run folder for checkpoints and metrics (default: a temporary folder)")
    c.add_argument("--dim", type=int, default=200, help="embedding dimension (complex dimension for rotate/complex)")
    c.add_argument("--negatives", type=int, default=64, help="negative samples per positive")
    c.add_argument("--margin", type=float, default=9.0, help="NSSA margin (gamma) of rotate/transe")
    c.add_argument("--attributes", action="store_true", help="also learn colour/size as (entity, attribute, value)")
    c.add_argument("--clip", help="multimodal: fuse each entity's CLIP image features (needs --images)")
    c.add_argument("--images", help="folder of the graph's images (for --clip crops)")
    c.add_argument("--write", type=int, default=0, metavar="N", help="add the N best predicted new triples")
    c.add_argument("--split-seed", type=int, default=0, help="seed of the train/valid/test split of the graph")
    t = c.add_argument_group("training")
    t.add_argument("--max-steps", type=int, default=2000, help="optimizer steps")
    t.add_argument("--max-minutes", type=float, help="wall-clock budget")
    t.add_argument("--batch-size", type=int, default=256, help="positive triples per step")
    t.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    t.add_argument("--warmup-steps", type=int, default=20, help="linear warm-up steps")
    t.add_argument("--eval-every", type=int, default=500, help="steps between validation MRR evaluations")
    t.add_argument("--seed", type=int, default=0, help="random seed")
    t.add_argument("--device", default="cpu", help="cpu | cuda")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    c.set_defaults(func=run_complete)


def _register_ask(cmds) -> None:
    a = cmds.add_parser("ask", help="answer a question from retrieved triples, with citations",
                        description="Template-based retrieval (spatial relations, colours, sizes, counts) over the "
                        "graph; every triple used is cited with its sources. --model: a lingvis causal LM writes the "
                        "answer from the cited triples.")
    a.add_argument("kg", metavar="KG", help=STORE_HELP)
    a.add_argument("question", help="e.g. 'which shapes are left of the blue square?'")
    a.add_argument("--model", help="a lingvis causal LM (chat) checkpoint to phrase the answer")
    a.add_argument("--top", type=int, default=20, help="most triples retrieved")
    a.add_argument("--json", action="store_true", help="print the answer and citations as JSON")
    a.set_defaults(func=run_ask)


def _register_serve(cmds) -> None:
    s = cmds.add_parser("serve", help="serve the graph at /v1/kg/sparql (read-only SPARQL endpoint)",
                        description="The SPARQL 1.1 Protocol over HTTP, with a time and a result limit per query; "
                        "updates are refused unless --allow-updates. --model adds lingvis models as `lingvis "
                        "serve` does.")
    s.add_argument("kg", metavar="KG", help=STORE_HELP)
    s.add_argument("--model", action="append", default=[], metavar="[NAME=]DIR", help="also serve this model")
    s.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    s.add_argument("--port", type=int, default=8000, help="port")
    s.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (default: $LINGVIS_API_KEY)")
    s.add_argument("--allow-updates", action="store_true", help="accept SPARQL updates (the graph opens writable)")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds a query may run")
    s.add_argument("--max-results", type=int, default=10000, help="rows (or triples) per answer")
    s.add_argument("--images", help="folder of the graph's images (the one given to kg build): entity pages show "
                   "crops of their image mentions")
    s.set_defaults(func=run_serve)


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
    i.add_argument("--bulk", action="store_true",
                   help="the store's bulk loader: fastest for big files, but not one transaction (an error can "
                   "leave part of a file loaded)")
    i.add_argument("--lenient", action="store_true",
                   help="skip IRI validation while parsing (faster; for trusted files such as kg export's)")
    i.set_defaults(func=run_import)


# ---- runners ---------------------------------------------------------------------------------------------
