"""Preference tuning with DPO through the one Trainer: a policy starts from `--model` and learns to rank
the chosen completion of each pair above the rejected one, relative to a frozen reference.

Reference modes: `precompute` (default) scores every pair once with the frozen reference (the starting
model, or `--reference-model`) before training, so no second model is held during training; `live` keeps a
frozen copy (or, with LoRA, uses the policy with its adapters disabled) and scores each batch.
Without `--data` the built-in preference set is used (concise answers preferred over verbose ones).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import api
from ..data.chat import PreferencePair, read_preferences
from ..data.chat_dataset import ListDataset, encode_preferences
from ..data.chat_synthetic import VERBOSE, is_verbose, preference_split
from ..data.text import train_val_split
from ..tasks.chat_sft import greedy_replies
from ..tasks.dpo import DPOTask, pair_logps, precompute_reference
from ..tokenizers import Tokenizer
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.trainer import Trainer

REFERENCE_MODES = ("precompute", "live")


@dataclass
class DPOArgs:
    out: str
    model: str                          # the starting policy (an SFT checkpoint or run folder)
    data: str | None = None             # preference JSONL/JSON; None = built-in preference set
    val_data: str | None = None
    val_fraction: float = 0.05
    beta: float = 0.1
    label_smoothing: float = 0.0
    rpo_alpha: float | None = None      # weight of the NLL of the chosen completions added to the loss (RPO)
    reference: str = "precompute"       # precompute | live
    reference_model: str | None = None  # frozen reference (default: the starting model)
    n_train: int = 2000                 # built-in data sizes
    n_val: int = 200


def load_pairs(args: DPOArgs) -> tuple[list[PreferencePair], list[PreferencePair]]:
    if args.data is None:
        return preference_split("train", args.n_train), preference_split("test", args.n_val)
    pairs = read_preferences(args.data)
    if args.val_data:
        return pairs, read_preferences(args.val_data)
    if len(pairs) < 2:
        raise ValueError(f"{args.data}: one pair cannot be split into train and held-out; add more or pass --val-data")
    keep, held = train_val_split([str(i) for i in range(len(pairs))], args.val_fraction, seed=0)
    return [pairs[int(i)] for i in keep], [pairs[int(i)] for i in held]


def _pad(tokenizer: Tokenizer) -> int:
    return tokenizer.pad_id if tokenizer.pad_id is not None else (tokenizer.eos_id or 0)


def train_dpo(args: DPOArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Preference-tune (or resume) and return the trainer summary with data counts."""
    if args.reference not in REFERENCE_MODES:
        raise ValueError(f"reference must be one of {REFERENCE_MODES}, got {args.reference!r}")
    torch.manual_seed(cfg.seed)
    out = Path(args.out)
    tokenizer = api.load_tokenizer(out if resumable(out, resume) else args.model)
    policy = api.load(args.model).train()
    reference = api.load(args.reference_model) if args.reference_model else None
    if reference is not None and reference.config.vocab_size != policy.config.vocab_size:
        raise ValueError(f"the reference model has {reference.config.vocab_size} tokens, the policy "
                         f"{policy.config.vocab_size}")
    train, val = load_pairs(args)
    context = policy.context_length
    tr, va = (encode_preferences(tokenizer, p, max_len=context + 1) for p in (train, val))
    if not tr.examples:
        raise ValueError(f"no preference pair fits the context of {context} tokens (longest: {tr.longest})")
    pad = _pad(tokenizer)
    live_reference = None
    if args.reference == "precompute":  # the frozen starting policy (or --reference-model) scores every pair once
        precompute_reference(reference if reference is not None else policy, tr.examples + va.examples, pad,
                             batch_size=cfg.micro_batch)
    elif reference is not None or not cfg.lora_rank:
        live_reference = reference if reference is not None else copy.deepcopy(policy)
    task = DPOTask(pad, args.beta, live_reference, args.label_smoothing, args.rpo_alpha)
    meta = {"dpo": {"beta": args.beta, "rpo_alpha": args.rpo_alpha, "reference": args.reference,
                    "data": args.data or "builtin"}}
    trainer = Trainer(policy, task, ListDataset(tr.examples), ListDataset(va.examples), cfg, args.out,
                      tokenizer=tokenizer, meta=meta)
    summary = trainer.fit(resume=resume)
    summary.update(train_pairs=len(tr.examples), val_pairs=len(va.examples), dropped_too_long=tr.dropped + va.dropped)
    return summary


@torch.no_grad()
def preference_report(model, tokenizer, pairs: list[PreferencePair], batch_size: int = 32,
                      max_new_tokens: int = 32, reference=None, beta: float = 0.1) -> dict:
    """Held-out preference accuracy (the model gives chosen the higher log-probability), reward accuracy
    and margin against `reference` (if given), and for the built-in set the share of greedy replies in
    the preferred (concise) style, their exact match (right answer, concise) and the share that give the
    right answer in either style (`correct`)."""
    enc = encode_preferences(tokenizer, pairs, max_len=model.context_length + 1)
    pad = _pad(tokenizer)
    items = enc.examples
    pol = pair_logps(model, items, pad, batch_size)  # (N, 2) policy log-probs of chosen, rejected
    report = {"n": len(items), "preference_accuracy": float((pol[:, 0] > pol[:, 1]).float().mean())}
    if reference is not None:
        rewards = beta * (pol - pair_logps(reference, items, pad, batch_size))  # (N, 2)
        report["reward_accuracy"] = float((rewards[:, 0] > rewards[:, 1]).float().mean())
        report["reward_margin"] = float((rewards[:, 0] - rewards[:, 1]).mean())
    answers = [p.meta.get("answer") for p in pairs]
    if all(a is not None for a in answers) and len(answers) == len(items):
        replies = []
        for s in range(0, len(items), batch_size):
            replies += greedy_replies(model, [e["prompt_ids"] for e in items[s:s + batch_size]], tokenizer.decode,
                                      tokenizer.eos_ids, pad, max_new_tokens)
        report["preferred_style"] = sum(not is_verbose(r) for r in replies) / len(replies)
        report["exact_match"] = sum(r.strip() == a for r, a in zip(replies, answers)) / len(replies)
        report["correct"] = sum(r.strip() in (a, VERBOSE.format(a)) for r, a in zip(replies, answers)) / len(replies)
        report["examples"] = [{"prompt": p.prompt[-1]["content"], "reply": r} for p, r in zip(pairs[:3], replies)]
    return report
