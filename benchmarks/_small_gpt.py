"""Small GPTs trained once for a benchmark (speculative decoding, int8 perplexity) and cached in its work folder."""
from __future__ import annotations

import time
from pathlib import Path


def train_small_gpt(out: Path, steps: int, tag: str, **args) -> None:
    """Pretrain a GPT into `out` (skipped when `out` already holds a finished run) for `steps` steps at batch 8;
    `args` are `GPTPretrainArgs` fields (preset, tokenizer, block_size, overrides...)."""
    from lingvis.recipes.gpt import GPTPretrainArgs, pretrain_gpt
    from lingvis.train.config import TrainConfig

    if (out / "checkpoints" / "last.json").is_file():
        return
    cfg = TrainConfig(max_steps=steps, batch_size=8, lr=2e-3, warmup_steps=30, eval_every=10 ** 6,
                      eval_batches=4, progress=False, seed=1337, device="cpu")
    t0 = time.process_time()
    summary = pretrain_gpt(GPTPretrainArgs(out=str(out), **args), cfg)
    print(f"[{tag}] trained {out.name}: {summary['parameters']:,} parameters, {summary['step']} steps, "
          f"{time.process_time() - t0:.0f} CPU s", flush=True)
