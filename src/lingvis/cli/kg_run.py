"""What the `lingvis kg` subcommands do (their arguments are declared in `cli/kg.py`)."""
from __future__ import annotations

import json
import sys

from .common import max_steps_of, print_json, train_config


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

    from ..train.checkpoint import resumable
    from ..train.config import TrainConfig

    root = Path(args.train_models)
    cfg = dict(max_steps=100000, max_minutes=args.train_minutes, progress=False, log_every=50, device=args.device)
    if need_text and not args.text_model:
        out = root / "text"
        if not resumable(out):
            from ..kg.text_train import TextTripleArgs, train_text_triples

            print(f"training the caption model into {out} ({args.train_minutes:g} min)", file=sys.stderr)
            train_text_triples(TextTripleArgs(out=str(out)), TrainConfig(batch_size=64, lr=1e-3, warmup_steps=100,
                                                                        eval_every=500, eval_batches=4, **cfg))
        args.text_model = str(out)
    if need_scene and not args.scene_model:
        out = root / "scene"
        if not resumable(out):
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
    cfg = TrainConfig(max_steps=max_steps_of(args), max_minutes=args.max_minutes, batch_size=args.batch_size,
                      lr=args.lr, warmup_steps=args.warmup_steps, weight_decay=0.0, grad_clip=None,
                      eval_every=args.eval_every, eval_batches=50, seed=args.seed, device=args.device,
                      progress=not args.no_progress)
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
