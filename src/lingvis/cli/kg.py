"""`lingvis kg build | query | export | import | train-* | complete | ask | serve`: multimodal knowledge graphs."""
from __future__ import annotations

import json
import sys

from .common import add_train_args, print_json, train_config

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

def _read_query(text: str) -> str:
    if text.startswith("@"):
        from pathlib import Path

        p = Path(text[1:])
        if not p.is_file():
            raise FileNotFoundError(f"query file not found: {p}")
        return p.read_text(encoding="utf-8")
    return text


def run_query(args) -> int:
    from ..kg.stores import open_store

    with open_store(args.kg, read_only=True) as store:
        res = store.query(_read_query(args.sparql), timeout=args.timeout, limit=args.limit)
    if args.json:
        print(json.dumps(res.to_json(), ensure_ascii=False))
    elif res.kind == "boolean":
        print("true" if res.boolean else "false")
    elif res.kind == "graph":
        sys.stdout.write(res.graph)
    else:
        print(res.table())
        print(f"({len(res.rows)} row{'s' if len(res.rows) != 1 else ''}{', truncated' if res.truncated else ''})",
              file=sys.stderr)
    return 0


def run_export(args) -> int:
    import tempfile
    from pathlib import Path

    from ..kg.stores import open_store

    with open_store(args.kg, read_only=True) as store:
        if args.out:
            print_json({"out": str(store.export(args.out, args.format)), "format": args.format})
            return 0
        with tempfile.TemporaryDirectory() as tmp:
            path = store.export(Path(tmp) / f"kg.{args.format}", args.format)
            sys.stdout.write(path.read_text(encoding="utf-8"))
    return 0


def run_import(args) -> int:
    from ..kg.stores import open_store

    with open_store(args.kg) as store:
        before = len(store)
        for f in args.files:
            store.import_file(f, args.format, args.graph, bulk=args.bulk, lenient=args.lenient)
        print_json({"kg": store.location, "files": len(args.files), "quads_before": before, "quads": len(store)})
    return 0


def _default_models(args, need_text: bool, need_scene: bool) -> None:
    """--train-models DIR: train whichever default model is missing (and needed) into DIR."""
    from pathlib import Path

    from ..train.config import TrainConfig

    root = Path(args.train_models)
    cfg = dict(max_steps=100000, max_minutes=args.train_minutes, progress=False, log_every=50, device=args.device)
    if need_text and not args.text_model:
        out = root / "text"
        if not (out / "checkpoints").is_dir():
            from ..kg.text_train import TextTripleArgs, train_text_triples

            print(f"training the caption model into {out} ({args.train_minutes:g} min)", file=sys.stderr)
            train_text_triples(TextTripleArgs(out=str(out)), TrainConfig(batch_size=64, lr=1e-3, warmup_steps=100,
                                                                        eval_every=500, eval_batches=4, **cfg))
        args.text_model = str(out)
    if need_scene and not args.scene_model:
        out = root / "scene"
        if not (out / "checkpoints").is_dir():
            from ..kg.scene_train import SceneGraphArgs, train_scene_graph

            print(f"training the scene-graph model into {out} ({args.train_minutes:g} min)", file=sys.stderr)
            train_scene_graph(SceneGraphArgs(out=str(out)), TrainConfig(batch_size=32, lr=2e-3, warmup_steps=50,
                                                                       eval_every=250, eval_batches=4, **cfg))
        args.scene_model = str(out)


def run_build(args) -> int:
    from ..kg.build import build, load_models, read_coco_scenes
    from ..kg.stores import open_store

    if bool(args.out) == bool(args.store):
        raise ValueError("give exactly one of --out DIR (embedded store) and --store http://HOST:PORT")
    scenes = read_coco_scenes(args.captions, args.images)
    if args.train_models:
        _default_models(args, any(s.captions for s in scenes), args.images is not None)
    models = load_models(args.text_model, args.scene_model, args.clip, args.device, tagger=args.tagger)
    with open_store(args.out or args.store) as store:
        def progress(done, total):
            print(f"\r{done}/{total} scenes", end="", file=sys.stderr, flush=True)

        summary = build(store, scenes, models, args.batch_size, args.link_threshold, args.relation_threshold,
                        progress=progress)
        print(file=sys.stderr)
        summary["kg"] = store.location
    print_json(summary)
    return 0


def run_train_text(args) -> int:
    from ..kg.text_train import TextTripleArgs, train_text_triples

    targs = TextTripleArgs(out=args.out, data=args.data, val_data=args.val_data, preset=args.preset, model=args.model,
                           vocab_size=args.vocab_size, n_train=args.n_train)
    print_json(train_text_triples(targs, train_config(args), resume=args.resume))
    return 0


def run_train_scenes(args) -> int:
    from ..kg.scene_train import SceneGraphArgs, train_scene_graph

    sargs = SceneGraphArgs(out=args.out, preset=args.preset, model=args.model, data=args.data, images=args.images,
                           n_train=args.n_train)
    print_json(train_scene_graph(sargs, train_config(args), resume=args.resume))
    return 0


def run_train_tagger(args) -> int:
    from ..kg.mention_tagger import TaggerArgs, train_mention_tagger

    targs = TaggerArgs(out=args.out, data=args.data, val_data=args.val_data, preset=args.preset, model=args.model,
                       vocab_size=args.vocab_size, n_train=args.n_train)
    print_json(train_mention_tagger(targs, train_config(args), resume=args.resume))
    return 0


def run_complete(args) -> int:
    import tempfile

    from ..kg.completion import CompletionArgs, read_tsv_folder, split_triples, store_triples, train_completion

    if bool(args.kg) == bool(args.data):
        raise ValueError("give a graph (KG) or --data FOLDER with train/valid/test.txt, not both")
    features = None
    if args.data:
        data = read_tsv_folder(args.data)
    else:
        from ..kg.stores import open_store

        with open_store(args.kg, read_only=not args.write) as store:
            data = split_triples(store_triples(store, args.attributes), seed=args.split_seed)
            if args.clip:
                from ..kg.completion_features import entity_image_features

                if not args.images:
                    raise ValueError("--clip needs --images, the folder of the graph's images")
                features = entity_image_features(store, data.entities, args.clip, args.images, args.device)
    from ..train.config import TrainConfig

    cargs = CompletionArgs(out=args.out or tempfile.mkdtemp(prefix="lingvis-kge-"), model=args.model, dim=args.dim,
                           negatives=args.negatives, margin=args.margin, seed=args.seed)
    cfg = TrainConfig(max_steps=args.max_steps, max_minutes=args.max_minutes, batch_size=args.batch_size, lr=args.lr,
                      warmup_steps=args.warmup_steps, weight_decay=0.0, grad_clip=None, eval_every=args.eval_every,
                      eval_batches=50, seed=args.seed, device=args.device, progress=not args.no_progress)
    model, result = train_completion(data, cargs, cfg, features)
    result["out"] = cargs.out
    if args.write:
        from ..kg.completion import predict_missing
        from ..kg.completion_features import write_predictions
        from ..kg.stores import open_store

        preds = predict_missing(model, data, top=args.write, offset=args.margin if args.model != "complex" else 0.0)
        with open_store(args.kg) as store:
            write_predictions(store, preds, f"kge-{args.model}")
        result["written"] = preds
    print_json(result)
    return 0


def run_ask(args) -> int:
    from ..kg.ask import Asker, answer_with_model
    from ..kg.stores import open_store

    with open_store(args.kg, read_only=True) as store:
        ans = Asker(store, args.top).ask(args.question)
    if args.model:
        from .. import api

        ans.answer = answer_with_model(ans, api.load(args.model), api.load_tokenizer(args.model))
    if args.json:
        print_json(ans.to_json())
        return 0
    print(ans.answer)
    for c in ans.citations:
        print("  " + c.text())
    return 0


def run_serve(args) -> int:
    import os

    from .._optional import require

    require("fastapi", "the server")
    uvicorn = require("uvicorn", "the server")
    from ..serve import ServeConfig, create_app, load_models
    from ..serve.routes_kg import KGEndpointConfig

    kg = KGEndpointConfig(args.kg, args.allow_updates, args.timeout, args.max_results, args.images)
    config = ServeConfig(host=args.host, port=args.port, api_key=args.api_key or os.environ.get("LINGVIS_API_KEY"),
                         kg=kg)
    config.validate()
    app = create_app(load_models(args.model, config) if args.model else [], config)
    mode = "read-write" if args.allow_updates else "read-only"
    print(f"serving the knowledge graph {args.kg} ({mode}) at http://{args.host}:{args.port}/v1/kg/sparql; "
          f"entity pages: http://{args.host}:{args.port}/#kg", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
