"""BERT pretraining learns: masked-LM and next-sentence accuracy rise well above chance on a small corpus."""
import json
import random

import torch

import lingvis
from lingvis.recipes.bert import BertPretrainArgs, pretrain_bert
from lingvis.train.config import TrainConfig

SYLLABLES = ["ka", "lo", "mi", "nu", "pe", "ri", "so", "ta", "vu", "ze", "bo", "di"]


def write_corpus(folder, n_topics=12, docs_per_topic=4, n_sentences=20, seed=0):
    """Each topic has its own words; a sentence is a run of consecutive words (cyclic). A masked word belongs
    to its sentence's topic (MLM) and B belongs with A when it shares A's topic (NSP)."""
    rng = random.Random(seed)
    folder.mkdir()
    for d in range(n_topics * docs_per_topic):
        t = d % n_topics
        words = [SYLLABLES[t] + SYLLABLES[(t + 3 * i + 1) % 12] + "x" for i in range(8)]
        sentences = []
        for _ in range(n_sentences):
            k, n = rng.randrange(8), rng.randint(4, 6)
            sentences.append(" ".join(words[(k + j) % 8] for j in range(n)) + ".")
        (folder / f"doc{d:02d}.txt").write_text(" ".join(sentences), encoding="utf-8")


def test_pretraining_raises_mlm_and_nsp_accuracy(tmp_path):
    write_corpus(tmp_path / "corpus")
    args = BertPretrainArgs(out=str(tmp_path / "run"), data=str(tmp_path / "corpus"), preset="bert-tiny",
                            vocab_size=400, max_len=32, dupe_factor=3, val_fraction=0.25,
                            overrides={"n_embd": 64, "n_head": 2, "mlp_hidden": 128, "dropout": 0.0})
    cfg = TrainConfig(max_steps=240, batch_size=32, lr=3e-3, warmup_steps=20, weight_decay=0.01, eval_every=240,
                      eval_batches=8, log_every=20, seed=0, progress=False)
    summary = pretrain_bert(args, cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    first = next(r for r in rows if r["split"] == "train")
    final = summary["eval"]  # held-out documents the model never trained on
    vocab = lingvis.load_tokenizer(tmp_path / "run").vocab_size
    print(f"first train step: mlm_acc {first['mlm_acc']:.3f} nsp_acc {first['nsp_acc']:.3f}; held-out after "
          f"{summary['step']} steps: mlm_acc {final['mlm_acc']:.3f} nsp_acc {final['nsp_acc']:.3f}")
    assert first["mlm_acc"] < 0.05
    assert final["mlm_acc"] > 0.15 > 15 / vocab   # chance: 1 / vocabulary (about 0.008)
    assert final["nsp_acc"] > 0.7                 # chance: 0.5
    model = lingvis.load(tmp_path / "run")
    assert model.config.head == "pretraining"
    with torch.no_grad():
        assert model(torch.tensor([[2, 10, 11, 3]])).nsp_logits.shape == (1, 2)
