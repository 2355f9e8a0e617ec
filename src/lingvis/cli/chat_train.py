"""`lingvis finetune chat`, `finetune dpo`, `data chat`, `evaluate chat`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_train_args, print_json, train_config


def register(sub, groups) -> None:
    _register_sft(groups["finetune"])
    _register_dpo(groups["finetune"])
    _register_data(groups["data"])
    _register_evaluate(groups["evaluate"])


def _lora_flag(p) -> None:
    p.add_argument("--lora", action="store_true",
                   help="train LoRA adapters only (rank --lora-rank, 8 when that is left at 0)")


def _register_sft(group) -> None:
    p = group.add_parser("chat", help="supervised fine-tuning on conversations (loss on assistant turns)",
                         description="Fine-tune a causal LM on conversations: JSONL rows {\"messages\": [...]} "
                         "(OpenAI/TRL), {\"conversations\": [{\"from\", \"value\"}]} (ShareGPT) or "
                         "{\"prompt\", \"completion\"}, rendered with the model's chat template; only assistant "
                         "tokens carry loss. Without --data: built-in reverse/sort/count/lookup conversations. "
                         "Without --model: a --preset (default llama-micro, at width 128 with a 7-token causal token "
                         "shift on the built-in data) "
                         "trained from scratch with a "
                         "char tokenizer and the ChatML template. Defaults from scratch on the built-in data: the "
                         "recipe of benchmarks/chat_learning.py (packed rows of 256, Muon at lr 4e-3, batch 16, "
                         "warmup 50); otherwise AdamW at "
                         "lr 2e-3, batch 32, warmup 100, no packing.")
    add_train_args(p, max_steps=3000, batch_size=None, lr=None, eval_every=250, warmup=None)
    for action in p._actions:  # the None defaults above are the recipe's, not a budget's
        if action.dest in ("batch_size", "lr", "warmup_steps") and action.help:
            action.help = action.help.split(" (default: chosen")[0] + " (default: see the description)"
    p.add_argument("--val-data", help="held-out conversations (default: a --val-fraction split of --data)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="share of --data held out")
    p.add_argument("--packing", action=argparse.BooleanOptionalAction,
                   help="pack whole conversations into full rows (block-diagonal attention, positions per "
                   "conversation; default: on from scratch on the built-in data, else off)")
    p.add_argument("--chat-template", help="a .jinja file (or template text) to use instead of the tokenizer's")
    p.add_argument("--block-size", type=int, help="context of a model trained from scratch (default: 256 on the "
                   "built-in data, else fits the data)")
    p.add_argument("--builtin-train", type=int, default=20_000, help="built-in data: training conversations")
    p.add_argument("--builtin-val", type=int, default=500, help="built-in data: held-out conversations")
    p.add_argument("--builtin-style", choices=["plain", "verbose", "mixed"], default="plain",
                   help="built-in data: answer style (mixed = half 'The answer is X.')")
    p.add_argument("--builtin-mix", type=_task_mix, metavar="TASK=W,...",
                   help="built-in data: task weights of the training conversations, e.g. lookup=3,count=1.5 "
                   "(unnamed tasks weigh 1; default: uniform; the held-out data keeps the uniform mix)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="reply length for held-out exact match")
    p.add_argument("--samples", type=int, default=3, help="held-out replies to print after training")
    _lora_flag(p)
    p.set_defaults(func=run_sft)


def _register_dpo(group) -> None:
    p = group.add_parser("dpo", help="preference tuning with DPO on {prompt, chosen, rejected} pairs",
                         description="Direct Preference Optimization from --model. Rows: {\"prompt\", \"chosen\", "
                         "\"rejected\"} as strings or message lists, or {\"chosen\", \"rejected\"} message lists "
                         "sharing the prompt. Without --data: the built-in set (concise answers preferred over "
                         "'The answer is X.'). Logs reward margin, reward accuracy and preference accuracy.")
    add_train_args(p, max_steps=300, batch_size=16, lr=1e-4, eval_every=50, warmup=20)
    p.add_argument("--val-data", help="held-out pairs (default: a --val-fraction split of --data)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="share of --data held out")
    p.add_argument("--beta", type=float, default=0.1, help="DPO temperature: strength of the pull to the reference")
    p.add_argument("--label-smoothing", type=float, default=0.0, help="conservative DPO: assumed label noise")
    p.add_argument("--rpo-alpha", type=float, default=None, help="add this weight times the NLL of the chosen "
                   "completions (RPO, as TRL's rpo_alpha): keeps the replies correct while the style moves")
    p.add_argument("--reference", choices=["precompute", "live"], default="precompute",
                   help="score pairs with the frozen reference once before training, or every batch (with "
                   "--lora: the adapter-free model, no copy)")
    p.add_argument("--reference-model", help="frozen reference checkpoint (default: the starting --model)")
    p.add_argument("--builtin-train", type=int, default=2000, help="built-in data: training pairs")
    p.add_argument("--builtin-val", type=int, default=200, help="built-in data: held-out pairs")
    _lora_flag(p)
    p.set_defaults(func=run_dpo)


def _register_data(group) -> None:
    d = group.add_parser("chat", help="write the built-in chat conversations and preference pairs as JSONL",
                         description="Writes train.jsonl / test.jsonl ({\"messages\": [...]}) and "
                         "prefs_train.jsonl / prefs_test.jsonl ({\"prompt\", \"chosen\", \"rejected\"}).")
    d.add_argument("--out", required=True, help="output folder")
    d.add_argument("--n-train", type=int, default=20_000, help="training conversations")
    d.add_argument("--n-test", type=int, default=500, help="held-out conversations")
    d.add_argument("--n-pairs", type=int, default=2000, help="training preference pairs")
    d.add_argument("--n-test-pairs", type=int, default=200, help="held-out preference pairs")
    d.add_argument("--style", choices=["plain", "verbose", "mixed"], default="plain", help="answer style")
    d.set_defaults(func=run_data)


def _register_evaluate(group) -> None:
    e = group.add_parser("chat", help="exact match of greedy replies to held-out conversations",
                         description="For each conversation, reply greedily to the prompt before its last "
                         "assistant message and compare with that message (exact match after stripping).")
    e.add_argument("--model", required=True, help="checkpoint or run folder")
    e.add_argument("--data", help="conversations JSONL/JSON (default: the built-in held-out split)")
    e.add_argument("--n", type=int, default=500, help="built-in data: conversations to score")
    e.add_argument("--max-new-tokens", type=int, default=32, help="reply length limit")
    e.add_argument("--batch-size", type=int, default=64, help="conversations per generation batch")
    e.add_argument("--device", default="cpu", help="cpu | cuda")
    e.set_defaults(func=run_evaluate)


def _task_mix(text: str) -> dict[str, float]:
    """`lookup=3,count=1.5` -> every built-in task with its weight (1 where not named)."""
    from ..data.chat_synthetic import TASKS

    mix = dict.fromkeys(TASKS, 1.0)
    for part in filter(None, text.split(",")):
        name, eq, value = part.partition("=")
        if not eq or name.strip() not in TASKS:
            raise argparse.ArgumentTypeError(f"{part!r}: expected TASK=WEIGHT with TASK one of {', '.join(TASKS)}")
        try:
            mix[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: the weight {value!r} is not a number") from None
    return mix


# fine-tuning a --model (the defaults this command had before the from-scratch recipe)
FINETUNE_TRAIN = {"batch_size": 32, "lr": 2e-3, "optimizer": "adamw", "warmup_steps": 100}


def _train_config(args):
    if args.lora and not args.lora_rank:
        args.lora_rank = 8
    return train_config(args)


def run_sft(args) -> int:
    from .. import api
    from ..recipes.chat import (
        SCRATCH_BLOCK_SIZE,
        SCRATCH_OVERRIDES,
        SCRATCH_TRAIN,
        ChatSFTArgs,
        evaluate_chat,
        load_conversations,
        train_chat,
    )

    scratch = not args.model and not args.data  # the measured recipe: from scratch on the built-in data
    for key, value in (SCRATCH_TRAIN if scratch else FINETUNE_TRAIN).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    cargs = ChatSFTArgs(out=args.out, data=args.data, val_data=args.val_data, val_fraction=args.val_fraction,
                        model=args.model, preset=args.preset, chat_template=args.chat_template,
                        packing=scratch if args.packing is None else args.packing,
                        block_size=args.block_size or (SCRATCH_BLOCK_SIZE if scratch else None),
                        n_train=args.builtin_train, n_val=args.builtin_val, style=args.builtin_style,
                        mix=args.builtin_mix, max_new_tokens=args.max_new_tokens,
                        overrides=SCRATCH_OVERRIDES if scratch and not args.preset else {})
    summary = train_chat(cargs, _train_config(args), resume=args.resume)
    if args.samples:
        model, tok = api.load(args.out), api.load_tokenizer(args.out)
        held = load_conversations(cargs)[1][:args.samples]
        summary["samples"] = evaluate_chat(model, tok, held, max_new_tokens=args.max_new_tokens,
                                           examples=args.samples)["examples"]
    print_json(summary)
    return 0


def run_dpo(args) -> int:
    from ..recipes.dpo import DPOArgs, train_dpo

    if not args.model:
        raise ValueError("--model is required: the checkpoint (or run folder) to preference-tune")
    dargs = DPOArgs(out=args.out, model=args.model, data=args.data, val_data=args.val_data,
                    val_fraction=args.val_fraction, beta=args.beta, label_smoothing=args.label_smoothing,
                    rpo_alpha=args.rpo_alpha, reference=args.reference, reference_model=args.reference_model, n_train=args.builtin_train,
                    n_val=args.builtin_val)
    print_json(train_dpo(dargs, _train_config(args), resume=args.resume))
    return 0


def run_data(args) -> int:
    from ..data.chat import write_jsonl
    from ..data.chat_synthetic import chat_split, preference_split

    out = Path(args.out)
    files = {
        "train": write_jsonl(out / "train.jsonl", (c.to_row() for c in chat_split("train", args.n_train,
                                                                                   style=args.style))),
        "test": write_jsonl(out / "test.jsonl", (c.to_row() for c in chat_split("test", args.n_test,
                                                                                 style=args.style))),
        "prefs_train": write_jsonl(out / "prefs_train.jsonl",
                                   (p.to_row() for p in preference_split("train", args.n_pairs))),
        "prefs_test": write_jsonl(out / "prefs_test.jsonl",
                                  (p.to_row() for p in preference_split("test", args.n_test_pairs))),
    }
    print_json({k: str(v) for k, v in files.items()})
    return 0


def run_evaluate(args) -> int:
    from .. import api
    from ..data.chat import read_conversations
    from ..data.chat_synthetic import chat_split
    from ..recipes.chat import evaluate_chat

    model, tok = api.load(args.model, device=args.device), api.load_tokenizer(args.model)
    conversations = read_conversations(args.data) if args.data else chat_split("test", args.n)
    result = evaluate_chat(model, tok, conversations, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    result.pop("replies")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0
