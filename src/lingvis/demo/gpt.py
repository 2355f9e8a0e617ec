"""Demo step: a small char-level GPT on the embedded Shakespeare corpus (about 2 minutes on 2 cores), with the
defaults `lingvis pretrain gpt --max-minutes` picks for the budget (Muon; docs/training.md has the sweep)."""
from __future__ import annotations

from pathlib import Path

from .. import api, generate
from ..recipes.gpt import GPTPretrainArgs, defaults_for, pretrain_gpt
from ..train.config import TrainConfig
from . import step


@step("gpt")
def demo_gpt(out: Path, minutes: float = 2.0) -> dict:
    run = out / "gpt"
    d = defaults_for(minutes)
    args = GPTPretrainArgs(out=str(run), tokenizer="char", stride=d.stride)  # the budget's model shape
    # the budget sets the step horizon (measured step time); evaluation every 200 steps costs ~2% of it
    cfg = TrainConfig(max_steps=100_000, max_minutes=minutes, batch_size=d.batch_size, lr=d.lr,
                      warmup_steps=d.warmup_steps, min_lr=d.min_lr, beta2=d.beta2, optimizer=d.optimizer,
                      eval_every=200, eval_batches=10, log_every=20, seed=1337)
    summary = pretrain_gpt(args, cfg)
    model, tok = api.load(run), api.load_tokenizer(run)
    print(f"\n[gpt] trained {summary['step']} steps in {summary['seconds']:.0f}s; "
          f"validation loss {summary['eval']['loss']:.3f} (perplexity {summary['eval']['perplexity']:.2f})")
    for prompt in ("ROMEO:\n", "KING HENRY:\n"):
        text = generate(model, tok, prompt, max_new_tokens=160, temperature=0.8, top_k=40, seed=0,
                        overflow="slide")
        print(f"--- sample: {prompt.strip()} ---\n{prompt}{text}\n")
    print(f"[gpt] run folder: {run} (checkpoints/, metrics.jsonl, loss.png)")
    return {"val_loss": summary["eval"]["loss"], "steps": summary["step"], "run": str(run)}
