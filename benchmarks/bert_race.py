"""The BERT race: `lingvis pretrain bert` (CLI defaults at the demo's model size) against transformers'
`BertForPreTraining` trained with the original BERT recipe scaled down, one after the other in this process,
on the demo's data and budget; then the demo's genre fine-tune of both encoders.

Data (the demo's bert step): the 33 embedded Folio plays for pretraining, the genre task's three test plays
held out; one WordPiece of the demo's size (1,000 tokens, trained by the lingvis run on the training plays)
serves both sides, with the same sentence-pair instances (128 tokens, NSP pairs, two passes with different
cuts) and the same 15% masking (80% [MASK], 10% random, 10% kept).

lingvis: `lingvis pretrain bert --preset bert-tiny-preln --vocab-size 1000 --max-minutes M`, every other flag
at its default (the demo's size: 2 layers, width 128, 4 heads, pre-norm, no dropout).

Reference: transformers' `BertForPreTraining` of the same size (2 layers, width 128, 4 heads, MLP 512, 128
positions; post-norm and dropout 0.1 as in BERT), random init, trained by a plain PyTorch loop with the
original recipe (Devlin et al. 2018, `run_pretraining.py`): AdamW lr 1e-4, betas (0.9, 0.999), eps 1e-6, weight
decay 0.01 (not on LayerNorm and biases), linear warmup over 1% of the steps (10k of 1M) then linear decay to
0, gradient clipping at 1.0, MLM + NSP loss, the output layer applied to the masked positions only. Its step
horizon is the number of steps that fit in the same budget, measured on a throwaway copy before the run
(outside the budget); its periodic evaluations for the curve are outside its clock too.

Scorer (the same for both, the demo's `PretrainTask`): MLM accuracy and NSP accuracy over the whole
held-out set, with masks drawn from a fixed seed. Fine-tune: the demo's genre task (`demo.bert.finetune_genre`
with its FINETUNE hyperparameters, mean-pooled classifier) from each encoder's folder; the reference's
folder is loaded into lingvis through the Hugging Face converter. Accuracy on the three unseen plays.

`--clock cpu` measures budgets, curves and times in CPU seconds of this process (lingvis runs with
`--budget-clock cpu`); `--threads N` sets torch's threads for both sides; `--smoke` runs a few seconds each.

    OMP_NUM_THREADS=1 python -m benchmarks.bert_race [--minutes 1.65] [--clock cpu] [--threads 1]
                                                     [--out runs/bert_race] [--lingvis-args "..."] [--smoke]
                                                     [--reference-from runs/bert_race/bert_race.json]

Measured 2026-12-06 (docs/training.md, "The BERT race"; 1 thread, CPU clock, 1.65 CPU minutes each, load
16-25): lingvis MLM 0.106, NSP 0.557, genre 0.515 (568 steps) vs the reference's 0.052, 0.459, 0.421 (356
steps).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import copy
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from benchmarks._race import (
    Clock,
    Side,
    bert_lr,
    earlier_reference,
    endless,
    finish,
    horizon,
    lingvis_side,
    load,
    race_args,
)

DEMO_MINUTES = 3.0 * 0.55  # the demo's pretraining share of its 3-minute bert step
BERT = {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01, "warmup_share": 0.01, "grad_clip": 1.0,
        "batch_size": 32, "max_len": 128, "dropout": 0.1}
VOCAB = 1000


class HFPretraining(nn.Module):
    """`BertForPreTraining` behind lingvis's pretraining interface (what `PretrainTask` calls): MLM logits of
    the chosen positions only (as the original `gather_indexes`), NSP logits."""

    def __init__(self, hf):
        super().__init__()
        self.hf = hf

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, mlm_positions=None):
        seq, pooled = self.hf.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                   return_dict=False)[:2]  # (B, T, C), (B, C)
        return SimpleNamespace(logits=self.hf.cls.predictions(seq[mlm_positions]),  # (N, V)
                               nsp_logits=self.hf.cls.seq_relationship(pooled))  # (B, 2)


def race_data(tokenizer, max_len: int):
    """(train instances, held-out batches with fixed masks, collator, task) as `pretrain bert` builds them."""
    from lingvis.data.mlm import MaskingConfig, SentencePairDataset, tokenize_documents
    from lingvis.recipes.bert import BertPretrainArgs, load_corpus, mlm_collator
    from lingvis.tasks.mlm import PretrainTask

    train_texts, val_texts = load_corpus(BertPretrainArgs(out=""))
    def make(texts, seed, dupe):
        return SentencePairDataset(tokenize_documents(tokenizer, texts), tokenizer.cls_id, tokenizer.sep_id, max_len,
                                   True, dupe, seed=seed)
    train_set, val_set = make(train_texts, 0, 2), make(val_texts, 1, 1)
    collator = mlm_collator(tokenizer, MaskingConfig(mlm_prob=0.15))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        held = [collator([val_set[j] for j in range(i, min(i + 64, len(val_set)))])
                for i in range(0, len(val_set), 64)]
    return train_set, held, collator, PretrainTask(collator)


@torch.no_grad()
def score(task, model: nn.Module, batches: list[dict]) -> dict:
    """The demo's metrics (PretrainTask) over the held-out batches: MLM accuracy, NSP accuracy, loss."""
    was = model.training
    model.eval()
    m = task.evaluate(model, batches)
    model.train(was)
    return {"mlm_acc": m["mlm_acc"], "nsp_acc": m.get("nsp_acc", float("nan")), "loss": m["loss"]}


def reference_model(vocab: int, tokenizer):
    import transformers

    cfg = transformers.BertConfig(vocab_size=vocab, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=512, max_position_embeddings=BERT["max_len"],
                                  hidden_dropout_prob=BERT["dropout"], attention_probs_dropout_prob=BERT["dropout"],
                                  pad_token_id=tokenizer.pad_id or 0, hidden_act="gelu")
    cfg._attn_implementation = "sdpa"
    return transformers.BertForPreTraining(cfg).train()


def run_reference(budget_s: float, tokenizer, train_set, held, collator, task, out: Path, clock: str,
                  evals: int = 8, seed: int = 1337, max_steps: int | None = None) -> Side:
    torch.manual_seed(seed)
    hf = reference_model(tokenizer.vocab_size, tokenizer)
    model = HFPretraining(hf)
    decay = [p for n, p in hf.named_parameters() if p.dim() >= 2 and "LayerNorm" not in n]
    rest = [p for n, p in hf.named_parameters() if not (p.dim() >= 2 and "LayerNorm" not in n)]
    def make_opt(params):
        return torch.optim.AdamW(params, lr=BERT["lr"], betas=BERT["betas"], eps=BERT["eps"])
    opt = make_opt([{"params": decay, "weight_decay": BERT["weight_decay"]}, {"params": rest, "weight_decay": 0.0}])
    loader = torch.utils.data.DataLoader(train_set, batch_size=BERT["batch_size"], shuffle=True,
                                         collate_fn=collator, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    next_batch = endless(loader).__next__  # epochs one after another, reshuffled each time

    def train_step(m, o, batch):
        loss, _ = task.loss(m, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), BERT["grad_clip"])
        o.step()
        o.zero_grad(set_to_none=True)

    # the horizon: steps that fit in the budget, timed on a throwaway copy outside the budget
    with torch.random.fork_rng():
        probe_model = copy.deepcopy(model)
        probe_opt = make_opt(probe_model.parameters())
        probe_batches = [collator([train_set[j] for j in range(i * 32, i * 32 + 32)]) for i in range(11)]
        it = iter(probe_batches)
        total, per_step = horizon(budget_s, lambda: train_step(probe_model, probe_opt, next(it)), 10, clock)
    if max_steps:
        total = min(total, max_steps)
    side = Side("transformers BertForPreTraining, original BERT recipe (plain loop)", load_before=load())
    every = max(1, total // evals)
    c = Clock(clock)
    for step in range(total):
        if step % every == 0:
            with c.pause():
                side.curve.append((c(), score(task, model, held[:4])["mlm_acc"]))
        for g in opt.param_groups:
            g["lr"] = bert_lr(step, total, BERT["lr"], BERT["warmup_share"])
        train_step(model, opt, next_batch())
        if c() >= budget_s:
            total = step + 1
            break
    side.seconds, side.wall, side.cpu, side.steps = c(), c.wall(), c.cpu(), total
    side.curve.append((side.seconds, score(task, model, held[:4])["mlm_acc"]))
    side.load_after = load()
    side.detail = {"horizon": total, "probe_s_per_step": round(per_step, 4), "eval_s_excluded": round(c.paused, 1),
                   "parameters": sum(p.numel() for p in hf.parameters()), **{k: v for k, v in BERT.items()}}
    side.scores = score(task, model, held)
    hf.config.architectures = ["BertForPreTraining"]
    hf.save_pretrained(out, safe_serialization=True)
    tokenizer.save(out)
    return side


def run_lingvis(minutes: float, out: Path, clock: str, extra: list[str], max_steps: int | None) -> tuple[Side, dict]:
    return lingvis_side("pretrain bert", ["--preset", "bert-tiny-preln", "--vocab-size", str(VOCAB)], minutes, out,
                        clock, extra, max_steps, "mlm_acc")


def finetune(folder: Path, out: Path, smoke: bool) -> dict:
    """The demo's genre fine-tune (its FINETUNE hyperparameters) from an encoder folder; held-out plays."""
    from lingvis.demo.bert import FINETUNE, finetune_genre

    hp = {**FINETUNE, "max_steps": 4} if smoke else FINETUNE
    t = finetune_genre(str(folder), out, 30.0, hp)["test_metrics"]
    return {"genre_acc": t["accuracy"], "genre_macro_f1": t["macro_f1"]}


def main() -> None:
    args, out = race_args(__doc__, "bert_race", "pretrain bert", DEMO_MINUTES, "'s pretraining")
    max_steps = 6 if args.smoke else None

    import lingvis

    ours, _ = run_lingvis(args.minutes, out / "lingvis", args.clock, args.lingvis_args.split(), max_steps)
    tokenizer = lingvis.api.load_tokenizer(out / "lingvis")
    train_set, held, collator, task = race_data(tokenizer, BERT["max_len"])
    model = lingvis.load(out / "lingvis").eval()
    ours.scores = score(task, model, held)
    print(ours.report(), flush=True)
    if args.reference_from:
        ref = earlier_reference(args.reference_from)
    else:
        ref = run_reference(args.minutes * 60, tokenizer, train_set, held,
                            collator, task, out / "reference", args.clock, max_steps=max_steps)
    print(ref.report(), flush=True)
    for side, folder in ((ours, out / "lingvis"), (ref, out / "reference")):
        if "genre_acc" not in side.scores:
            side.scores.update(finetune(folder, out / f"{folder.name}-genre", args.smoke))
        print(f"{side.name}: genre accuracy on the unseen plays {side.scores['genre_acc']:.4f}", flush=True)
    finish(ours, ref, ("mlm_acc", "nsp_acc", "genre_acc", "genre_macro_f1"), out, "bert_race",
           "held-out MLM accuracy", "BERT at demo scale: MLM accuracy against time", args.clock)


if __name__ == "__main__":
    main()
