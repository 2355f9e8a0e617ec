"""Demo step: a multimodal knowledge graph from the built-in shapes world (about 2 minutes on 2 cores). Two small
extractors trained for half a minute each (captions -> typed triples with a seq2seq model, images -> scene
graphs), held-out numbers for both, a graph built from held-out captions + images (`kg build`'s code path,
embedded pyoxigraph store) with its cross-modal linking accuracy, link prediction on the built-in graph with
known rules, one SPARQL query and one `kg ask` answer with citations. Longer runs: benchmarks/kg_learning.py."""
from __future__ import annotations

import json
from pathlib import Path

from ..train.config import TrainConfig
from . import step

QUERY = """SELECT ?subject ?object ?source ?confidence WHERE {
  ?st a kg:Statement ; rdf:subject ?subject ; rdf:predicate kg:left_of ; rdf:object ?object ;
      prov:wasDerivedFrom ?source ; kg:confidence ?confidence .
  FILTER EXISTS { ?subject a kg:circle } FILTER EXISTS { ?object a kg:square }
} ORDER BY ?subject ?source LIMIT 6"""
QUESTION = "which shapes are left of the blue square?"


def _train_text(run: Path, seconds: float, n_eval: int) -> dict:
    from .. import api
    from ..kg.text_train import (TextTripleArgs, evaluate_text_triples, extract_triples, shapes_caption_sentences,
                                 train_text_triples)

    args = TextTripleArgs(out=str(run), preset="transformer-tiny", n_train=600, n_val=10, vocab_size=400)
    cfg = TrainConfig(max_steps=600, max_minutes=seconds / 60, batch_size=32, lr=2e-3, warmup_steps=30, beta2=0.98,
                      weight_decay=0.01, eval_every=10_000, eval_batches=1, log_every=25, progress=False)
    summary = train_text_triples(args, cfg)
    test = shapes_caption_sentences("test", n_eval)
    model, tok = api.load(run), api.load_tokenizer(run)
    r = evaluate_text_triples(model, tok, test)
    print(f"[kg] text triples: transformer-tiny, {summary['step']} steps on {summary['train_sentences']} captions; "
          f"held-out strict micro-F1 {r['triple_f1']:.3f} ({r['gold_triples']} triples in {r['sentences']} "
          f"captions), entity F1 {r['entity_f1']:.3f}")
    example = next((x for x in test if x.triples), test[0])
    triples, _ = extract_triples(model, tok, [example.text])[0]
    found = "; ".join(f"({t.head.text}: {t.head.type}) {t.relation} ({t.tail.text}: {t.tail.type}), confidence "
                      f"{t.confidence:.2f}" for t in triples)
    print(f"[kg]   {example.text!r} -> {found or 'no triples'}")
    return {"triple_f1": r["triple_f1"], "entity_f1": r["entity_f1"], "steps": summary["step"]}


def _train_scenes(run: Path, seconds: float, n_eval: int) -> dict:
    from .. import api
    from ..kg.scene_train import SceneGraphArgs, evaluate_scene_graphs, shapes_scene_graphs, train_scene_graph

    args = SceneGraphArgs(out=str(run), preset="scene-graph-small", n_train=1000, n_val=16)
    cfg = TrainConfig(max_steps=600, max_minutes=seconds / 60, batch_size=32, lr=3e-3, warmup_steps=20,
                      weight_decay=0.01, eval_every=10_000, eval_batches=1, log_every=25, progress=False)
    summary = train_scene_graph(args, cfg)
    n = n_eval
    data = shapes_scene_graphs("test", n)
    r = evaluate_scene_graphs(api.load(run), data.graphs, [data.images(i) for i in range(n)], ks=(5, 20))
    print(f"[kg] scene graphs: scene-graph-small, {summary['step']} steps on {summary['train_images']} images; "
          f"{n} held-out scenes: PredCls R@20 {r['R@20']:.3f} (mR@20 {r['mR@20']:.3f}, R@5 {r['R@5']:.3f}), "
          f"triple F1 with detection {r['sgdet_f1']:.3f}, type / colour accuracy {r['type_acc']:.3f} / "
          f"{r['colour_acc']:.3f}")
    return {"R@20": r["R@20"], "mR@20": r["mR@20"], "sgdet_f1": r["sgdet_f1"], "steps": summary["step"]}


def _build(root: Path, text_run: Path, scene_run: Path, n_scenes: int) -> tuple[Path, dict]:
    from ..data.shapes import generate_shapes, read_scenes_jsonl
    from ..kg.build import build, load_models, read_coco_scenes
    from ..kg.evaluation import linking_accuracy
    from ..kg.stores import open_store

    data = root / "shapes"
    if not (data / "captions_test.json").is_file():
        generate_shapes(data, n_train=0, n_val=0, n_test=n_scenes, n_test_unseen=0)
    graph = root / "graph"
    scenes = read_coco_scenes(data / "captions_test.json", data / "images")
    with open_store(graph) as store:
        summary = build(store, scenes, load_models(str(text_run), str(scene_run)))
        gold = {r["file_name"]: r["scene"] for r in read_scenes_jsonl(data / "scenes_test.jsonl")}
        link = linking_accuracy(store, gold)
    print(f"[kg] built {graph}: {summary['scenes']} held-out scenes ({summary['documents']} documents, "
          f"{summary['quads']:,} quads with PROV-O provenance) at {summary['scenes_per_s']} scenes/s")
    print(f"[kg] entity linking, caption mentions -> image objects: accuracy {link['accuracy']:.3f} "
          f"({link['correct']}/{link['mentions']} mentions)")
    return graph, {"linking": link["accuracy"], "scenes_per_s": summary["scenes_per_s"], "quads": summary["quads"]}


def _complete(run: Path, seconds: float) -> dict:
    from ..kg.completion import CompletionArgs, rules_graph, train_completion

    data = rules_graph()
    cfg = TrainConfig(max_steps=2000, max_minutes=seconds / 60, batch_size=256, lr=0.05, warmup_steps=20,
                      weight_decay=0.0, grad_clip=None, eval_every=10_000, eval_batches=10, log_every=100,
                      progress=False)
    _, res = train_completion(data, CompletionArgs(out=str(run), model="rotate", dim=32, negatives=16, margin=6.0), cfg)
    t = res["test"]
    print(f"[kg] link prediction, built-in graph with known rules ({res['data']['entities']} entities, "
          f"{res['data']['train']} training triples): RotatE dim 32, {res['train']['step']} steps; filtered test "
          f"MRR {t['mrr']:.3f}, Hits@1 {t['hits@1']:.3f}, Hits@10 {t['hits@10']:.3f}")
    return {"mrr": t["mrr"], "hits@1": t["hits@1"], "hits@10": t["hits@10"], "steps": res["train"]["step"]}


def _query_and_ask(graph: Path) -> dict:
    from ..kg.ask import Asker
    from ..kg.queries import PREFIX
    from ..kg.stores import open_store

    with open_store(graph, read_only=True) as store:
        res = store.query(PREFIX + QUERY)
        ans = Asker(store, max_entities=5).ask(QUESTION)
    print(f"[kg] SPARQL (circles left of squares, each statement with its source and confidence):\n{QUERY}")
    print(res.table())
    print(f"[kg] kg ask {json.dumps(QUESTION)}\n    {ans.answer}")
    for c in ans.citations:
        print("    " + c.text())
    return {"query_rows": len(res.rows), "answer": ans.answer, "citations": len(ans.citations)}


@step("kg")
def demo_kg(out: Path, text_seconds: float = 30, scene_seconds: float = 35, kge_seconds: float = 20,
            n_scenes: int = 100) -> dict:
    """Budgets in wall-clock seconds per model; `n_scenes` held-out scenes for the numbers and the graph."""
    root = out / "kg"
    text = _train_text(root / "text", text_seconds, n_scenes)
    scenes = _train_scenes(root / "scenes", scene_seconds, n_scenes)
    graph, built = _build(root, root / "text", root / "scenes", n_scenes)
    rules = _complete(root / "rules", kge_seconds)
    asked = _query_and_ask(graph)
    print(f"[kg] graph folder: {graph}; try: lingvis kg serve {graph} --images {root / 'shapes' / 'images'} "
          f"(entity pages at http://127.0.0.1:8000/#kg)")
    return {"text": text, "scenes": scenes, **built, "link_prediction": rules, **asked, "graph": str(graph)}
