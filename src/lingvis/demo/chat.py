"""Demo step: chat SFT of a small Llama-style model from scratch on the built-in conversations (reverse,
sort, count, lookup; ChatML template, loss on assistant turns, packed rows), then the held-out exact match
and a short dialogue (about 2.5 minutes on 2 cores)."""
from __future__ import annotations

from pathlib import Path

from .. import api
from ..data.chat_synthetic import chat_split
from ..recipes.chat import (
    SCRATCH_BLOCK_SIZE,
    SCRATCH_OVERRIDES,
    SCRATCH_TRAIN,
    ChatSFTArgs,
    evaluate_chat,
    train_chat,
)
from ..tasks.chat_sft import greedy_replies
from ..train.config import TrainConfig
from . import step

DIALOGUE = ["reverse: lingvis", "sort: 4 1 3 1 2", "count a in banana", "k=3 v=8 z=1; v?"]


def dialogue(model, tok, prompts: list[str], system: str | None = None) -> list[dict]:
    """A multi-turn conversation: each reply is generated with the whole history in the prompt."""
    messages = [{"role": "system", "content": system}] if system else []
    for prompt in prompts:
        messages.append({"role": "user", "content": prompt})
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        reply = greedy_replies(model, [ids], tok.decode, tok.eos_ids, tok.pad_id or 0, 32)[0]
        messages.append({"role": "assistant", "content": reply})
    return messages


@step("chat")
def demo_chat(out: Path, minutes: float = 2.5) -> dict:
    run = out / "chat"
    # the from-scratch recipe of benchmarks/chat_learning.py (docs/chat.md) on a shorter schedule
    args = ChatSFTArgs(out=str(run), preset="llama-micro", overrides=SCRATCH_OVERRIDES, packing=True,
                       block_size=SCRATCH_BLOCK_SIZE, n_train=12000, n_val=64)
    cfg = TrainConfig(max_steps=600, max_minutes=minutes, **SCRATCH_TRAIN, eval_every=250, eval_batches=4,
                      log_every=25, seed=1337)
    summary = train_chat(args, cfg)
    model, tok = api.load(run), api.load_tokenizer(run)
    result = evaluate_chat(model, tok, chat_split("test", 200))
    print(f"\n[chat] trained {summary['step']} steps in {summary['seconds']:.0f}s on {summary['train_rows']} packed "
          f"rows ({summary['train_conversations']} conversations); held-out loss {summary['eval']['loss']:.3f}, "
          f"exact match of greedy replies on {result['n']} held-out conversations: {result['exact_match']:.1%}")
    print("--- sample dialogue (the ChatML prompt holds every earlier turn) ---")
    for m in dialogue(model, tok, DIALOGUE)[-2 * len(DIALOGUE):]:
        print(f"{m['role']:>9}> {m['content']}".replace("\n", "\\n"))
    print(f"[chat] run folder: {run} (checkpoints/, metrics.jsonl, loss.png); chat with it: "
          f"lingvis chat --model {run}")
    return {"exact_match": result["exact_match"], "val_loss": summary["eval"]["loss"], "steps": summary["step"],
            "run": str(run)}
