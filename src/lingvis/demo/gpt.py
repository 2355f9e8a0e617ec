"""Demo step: a small char-level GPT on the embedded Shakespeare corpus (about 2 minutes on 2 cores)."""
from __future__ import annotations

from pathlib import Path

from .. import api, generate
from ..recipes.gpt import GPTPretrainArgs, pretrain_gpt
from ..train.config import TrainConfig
from . import step


@step("gpt")
def demo_gpt(out: Path, minutes: float = 2.0) -> dict:
    run = out / "gpt"
    args = GPTPretrainArgs(out=str(run), preset="gpt-micro", tokenizer="char")
    cfg = TrainConfig(max_steps=1200, max_minutes=minutes, batch_size=16, lr=2e-3, warmup_steps=50,
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
