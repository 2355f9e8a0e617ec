"""`lingvis kg ...` end to end with tiny models (their accuracy is not the point here: the learning runs are in
benchmarks/kg_learning.py)."""
from __future__ import annotations

import json

import pytest

from lingvis.cli import main
from lingvis.train.config import TrainConfig


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from lingvis.data.shapes import generate_shapes

    return generate_shapes(tmp_path_factory.mktemp("shapes"), n_train=0, n_val=0, n_test=6, n_test_unseen=0)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from lingvis.kg.scene_train import SceneGraphArgs, train_scene_graph
    from lingvis.kg.text_train import TextTripleArgs, train_text_triples

    root = tmp_path_factory.mktemp("kg-models")
    cfg = dict(batch_size=16, lr=3e-3, warmup_steps=2, eval_every=6, eval_batches=1, progress=False, device="cpu")
    train_text_triples(TextTripleArgs(out=str(root / "text"), preset="transformer-nano", n_train=20, n_val=4,
                                      vocab_size=330), TrainConfig(max_steps=6, **cfg))
    train_scene_graph(SceneGraphArgs(out=str(root / "scene"), preset="scene-graph-nano", n_train=16, n_val=4),
                      TrainConfig(max_steps=3, **cfg))
    return root


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A clip-nano with random weights and a word tokenizer over the shapes words."""
    import torch

    import lingvis
    from lingvis.recipes.clip_data import train_word_tokenizer

    tok = train_word_tokenizer(["a photo of a small large red green blue yellow purple orange circle square "
                                "triangle star cross"])
    torch.manual_seed(0)
    text = {"vocab_size": tok.vocab_size}
    model = lingvis.build("clip-nano", eos_token_id=3, bos_token_id=2, pad_token_id=0, text=text)
    return lingvis.save(model, tmp_path_factory.mktemp("clip") / "clip", tokenizer=tok)


def _json_out(capsys):
    return json.loads(capsys.readouterr().out)


def test_build_query_export_ask(shapes, models, tmp_path, capsys):
    kg = tmp_path / "kg"
    args = ["kg", "build", "--captions", str(shapes["captions_test"]), "--images", str(shapes["images"]),
            "--out", str(kg), "--text-model", str(models / "text"), "--scene-model", str(models / "scene")]
    assert main(args) == 0
    first = _json_out(capsys)
    assert first["scenes"] == 6 and first["documents"] == 6 + len(json.loads(shapes["captions_test"].read_text())["annotations"])
    assert main(args) == 0  # building again adds nothing
    assert _json_out(capsys)["quads"] == first["quads"]
    assert main(["kg", "query", str(kg), "PREFIX kg: <https://lingvis.dev/ns/kg#> "
                 "SELECT (COUNT(DISTINCT ?e) AS ?n) WHERE { ?e a kg:Entity }", "--json"]) == 0
    n = int(_json_out(capsys)["results"]["bindings"][0]["n"]["value"])
    assert n >= 6
    assert main(["kg", "query", str(kg), "SELECT ?g WHERE { GRAPH ?g { ?g a <http://www.w3.org/ns/prov#Entity> } }"]) == 0
    table = capsys.readouterr().out
    assert "kgd:source/test_000000.png" in table and "kgd:source/caption:" in table
    out = tmp_path / "kg.jsonl"
    assert main(["kg", "export", str(kg), "--format", "jsonl", "--out", str(out)]) == 0
    capsys.readouterr()
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sum("id" in x for x in lines) == n
    assert all({"subject", "predicate", "object", "source", "confidence"} <= set(x) for x in lines if "subject" in x)
    assert main(["kg", "export", str(kg), "--format", "ttl"]) == 0
    assert "@prefix kg:" in capsys.readouterr().out
    copy = tmp_path / "copy"
    assert main(["kg", "import", str(copy), str(out)]) == 0
    capsys.readouterr()
    assert main(["kg", "ask", str(kg), "how many shapes are there?", "--json"]) == 0
    ans = _json_out(capsys)
    assert ans["intent"] == "count" and ans["answer"].startswith(f"{n} ")


def test_build_needs_a_model_for_each_input(shapes, tmp_path, capsys):
    code = main(["kg", "build", "--captions", str(shapes["captions_test"]), "--out", str(tmp_path / "kg")])
    assert code == 2 and "text model" in capsys.readouterr().err
    code = main(["kg", "build", "--out", str(tmp_path / "kg")])
    assert code == 2 and "--captions, --images or both" in capsys.readouterr().err


def test_train_tagger_and_build_with_it(shapes, models, tmp_path, capsys):
    tagger = tmp_path / "tagger"
    assert main(["kg", "train-tagger", "--out", str(tagger), "--n-train", "12", "--max-steps", "3", "--eval-every",
                 "3", "--batch-size", "8", "--no-progress"]) == 0
    res = _json_out(capsys)
    assert res["step"] == 3 and "B-circle" in res["labels"]
    kg = tmp_path / "kg"
    assert main(["kg", "build", "--captions", str(shapes["captions_test"]), "--out", str(kg), "--text-model",
                 str(models / "text"), "--tagger", str(tagger)]) == 0
    assert _json_out(capsys)["scenes"] == 6
    code = main(["kg", "build", "--captions", str(shapes["captions_test"]), "--out", str(kg), "--text-model",
                 str(models / "text"), "--tagger", str(models / "text")])
    assert code == 2 and "no BERT token classifier" in capsys.readouterr().err


def test_complete_on_a_tsv_folder(tmp_path, capsys):
    from lingvis.kg.completion import rules_graph

    d = rules_graph(40, seed=3)
    for split in ("train", "valid", "test"):
        rows = getattr(d, split).tolist()
        (tmp_path / f"{split}.txt").write_text("".join(f"{d.entities[h]}\t{d.relations[r]}\t{d.entities[t]}\n"
                                                       for h, r, t in rows))
    assert main(["kg", "complete", "--data", str(tmp_path), "--model", "transe", "--dim", "16", "--max-steps", "20",
                 "--eval-every", "20", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    res = _json_out(capsys)
    assert set(res["test"]) >= {"mrr", "hits@1", "hits@3", "hits@10"} and res["data"]["train"] == len(d.train)


def test_clip_linking_and_multimodal_completion(shapes, models, clip_dir, tmp_path, capsys):
    kg = tmp_path / "kg"
    assert main(["kg", "build", "--captions", str(shapes["captions_test"]), "--images", str(shapes["images"]),
                 "--out", str(kg), "--text-model", str(models / "text"), "--scene-model", str(models / "scene"),
                 "--clip", str(clip_dir)]) == 0
    capsys.readouterr()
    from lingvis.kg.stores import open_store

    with open_store(kg, read_only=True) as store:
        linkers = {m.model for m in store.mentions() if m.text is not None}
    assert all(name.startswith("linker+clip:") for name in linkers)
    assert main(["kg", "complete", str(kg), "--model", "rotate", "--dim", "8", "--max-steps", "4", "--eval-every", "4",
                 "--no-progress", "--attributes", "--clip", str(clip_dir), "--images", str(shapes["images"]),
                 "--write", "3", "--out", str(tmp_path / "run")]) == 0
    res = _json_out(capsys)
    assert "mrr" in res["valid"] and len(res["written"]) == 3
    import lingvis

    kge = lingvis.load(tmp_path / "run")
    assert kge.config.image_dim > 0 and 0 < float(kge.has_image.sum()) < kge.config.n_entities  # values have none
    with open_store(kg, read_only=True) as store:
        assert any(s["source"] == "completion:kge-rotate" for s in store.sources()) or \
            any(st.source == "completion:kge-rotate" for st in store.statements())
