"""Sequence classification: fine-tuning from files beats chance on held-out data; prediction; bad labels."""
import json
import random

import pytest
import torch

import lingvis
from lingvis.data.tasks_text import TaskDataError, TextExample
from lingvis.recipes.bert_finetune import FinetuneArgs, finetune
from lingvis.tasks.classify import encode_classification, predict_classify
from lingvis.tokenizers import train_wordpiece
from lingvis.train.config import TrainConfig

TOPICS = {"sport": ["match", "goal", "team", "coach", "league", "striker"],
          "food": ["soup", "bread", "cheese", "recipe", "oven", "salad"],
          "weather": ["rain", "storm", "sunshine", "forecast", "wind", "snow"]}
FILLER = ["the", "a", "today", "was", "really", "quite", "i", "think", "honestly", "news", "about", "our"]


def sentence(rng, topic):
    words = rng.sample(FILLER, 5) + rng.sample(TOPICS[topic], 2)
    rng.shuffle(words)
    return " ".join(words)


def write_sets(tmp_path):
    rng = random.Random(0)
    train = "text,label\n" + "".join(f"{sentence(rng, t)},{t}\n" for t in rng.choices(list(TOPICS), k=300))
    test = "text\tlabel\n" + "".join(f"{sentence(rng, t)}\t{t}\n" for t in rng.choices(list(TOPICS), k=90))
    (tmp_path / "train.csv").write_text(train)
    (tmp_path / "test.tsv").write_text(test)


def test_finetune_classify_beats_chance_on_held_out_file(tmp_path):
    write_sets(tmp_path)
    args = FinetuneArgs(task="classify", out=str(tmp_path / "run"), data=str(tmp_path / "train.csv"),
                        test_data=str(tmp_path / "test.tsv"), preset="bert-tiny", vocab_size=300, max_len=32,
                        overrides={"n_embd": 64, "n_head": 2, "mlp_hidden": 128})
    cfg = TrainConfig(max_steps=80, batch_size=16, lr=2e-3, warmup_steps=10, weight_decay=0.01, eval_every=40,
                      eval_batches=4, seed=0, progress=False)
    summary = finetune(args, cfg)
    acc = summary["test_metrics"]["accuracy"]
    print(f"held-out accuracy {acc:.3f} (chance 0.333)")
    assert acc > 0.8
    model, tok = lingvis.load(tmp_path / "run"), lingvis.load_tokenizer(tmp_path / "run")
    assert model.config.labels == ["food", "sport", "weather"]
    preds = predict_classify(model, tok, ["the storm and the rain today", "our coach and the striker"])
    assert [p["label"] for p in preds] == ["weather", "sport"]
    assert abs(sum(preds[0]["scores"].values()) - 1) < 1e-5
    assert json.loads((tmp_path / "run" / "test_metrics.json").read_text())["accuracy"] == acc


@pytest.fixture(scope="module")
def tok():
    return train_wordpiece(["the cat sat on the mat", "a dog barked at the moon"] * 20, vocab_size=100)


def test_pairs_truncation_and_label_errors(tok):
    ex = [TextExample("the cat sat " * 30, "a dog barked", "yes", "f.csv:2"),
          TextExample("the cat", None, "no", "f.csv:3")]
    feats, cut = encode_classification(tok, ex, ["no", "yes"], max_len=16)
    assert cut == 1 and len(feats[0]["ids"]) == 16 and feats[0]["truncated"]
    a = feats[0]
    assert a["ids"][0] == tok.cls_id and a["ids"].count(tok.sep_id) == 2 and a["types"][-1] == 1
    assert a["label"] == 1 and feats[1]["label"] == 0 and feats[1]["types"] == [0] * 4
    with pytest.raises(TaskDataError, match=r"f\.csv:3: unknown label 'no'"):
        encode_classification(tok, ex, ["yes", "maybe"], max_len=16)
    missing = [TextExample("the cat", None, None, "f.csv:9")]
    with pytest.raises(TaskDataError, match=r"f\.csv:9: missing label"):
        encode_classification(tok, missing, ["yes"], max_len=16)


def test_predict_rejects_wrong_head_and_mismatched_pairs(tok):
    torch.manual_seed(0)
    tagger = lingvis.build("bert-tiny", vocab_size=tok.vocab_size, head="tag", labels=["O"])
    with pytest.raises(ValueError, match="not a sequence classifier"):
        predict_classify(tagger, tok, ["x"])
    clf = lingvis.build("bert-tiny", vocab_size=tok.vocab_size, head="classify", labels=["a", "b"])
    with pytest.raises(ValueError, match="2 texts but 1 text pairs"):
        predict_classify(clf, tok, ["x", "y"], ["z"])
    out = predict_classify(clf, tok, ["the cat " * 200], max_len=64)
    assert out[0]["truncated"] and out[0]["label"] in ("a", "b")
