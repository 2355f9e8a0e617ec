"""Demo step: pretrain a small BERT (MLM + NSP) on the embedded Shakespeare plays, fine-tune it to tell
tragedy / comedy / history passages apart, and score plays it never saw (about 1.5 minutes on 2 cores)."""
from __future__ import annotations

from pathlib import Path

from .. import api
from ..data.builtin_text import TEST_PLAYS, genre_passages
from ..recipes.bert import BertPretrainArgs, pretrain_bert
from ..recipes.bert_finetune import FinetuneArgs, finetune
from ..tasks.classify import predict_classify
from ..train.config import TrainConfig
from . import step

MODEL = {"n_head": 4}  # bert-tiny (2 layers, width 128) with 4 attention heads


@step("bert")
def demo_bert(out: Path, minutes: float = 1.5) -> dict:
    pre, fine = out / "bert-pretrain", out / "bert-genre"
    pargs = BertPretrainArgs(out=str(pre), preset="bert-tiny", vocab_size=4000, max_len=64, overrides=MODEL)
    # step counts sized for 2 free cores; the minute cap only bites on a busy machine
    pcfg = TrainConfig(max_steps=150, max_minutes=minutes * 0.35, batch_size=32, lr=1e-3, warmup_steps=30,
                       weight_decay=0.01, eval_every=150, eval_batches=4, log_every=20, seed=1337)
    p = pretrain_bert(pargs, pcfg)
    ev = p["eval"]
    print(f"\n[bert] pretrained {p['step']} steps in {p['seconds']:.0f}s: held-out MLM accuracy "
          f"{ev.get('mlm_acc', 0):.3f}, NSP accuracy {ev.get('nsp_acc', 0):.3f} (chance 0.5)")
    # mean-pooled classifier input: after a short pretraining the token states carry more than [CLS]
    fargs = FinetuneArgs(task="classify", out=str(fine), model=str(pre), max_len=128,
                         overrides={"classifier_pooling": "mean"})
    # as many fine-tuning steps as this machine runs in ~40% of the budget (measured while pretraining),
    # so that the learning-rate schedule completes instead of being cut by the clock
    steps = max(40, min(200, int(p["step"] / max(p["seconds"], 1e-6) * minutes * 60 * 0.4)))
    fcfg = TrainConfig(max_steps=steps, max_minutes=minutes * 0.55, batch_size=16, lr=1e-3, warmup_steps=20,
                       weight_decay=0.01, eval_every=max(1, steps // 2), eval_batches=8, log_every=20, seed=1337)
    f = finetune(fargs, fcfg)
    test = f["test_metrics"]
    print(f"[bert] fine-tuned {f['step']} steps; held-out plays {', '.join(TEST_PLAYS)}: accuracy "
          f"{test['accuracy']:.3f} (chance {test['chance']:.3f}), macro-F1 {test['macro_f1']:.3f}")
    model, tok = api.load(fine), api.load_tokenizer(fine)
    for ex in genre_passages()["test"][::300][:3]:
        pred = predict_classify(model, tok, [ex.text])[0]
        print(f"  [{ex.source}] gold {ex.label:<8} predicted {pred['label']:<8} ({pred['score']:.2f}): "
              f"{ex.text[:90]}...")
    print(f"[bert] run folders: {pre} and {fine}")
    return {"mlm_acc": ev.get("mlm_acc"), "nsp_acc": ev.get("nsp_acc"), "test_accuracy": test["accuracy"],
            "test_macro_f1": test["macro_f1"], "run": str(fine)}
