"""Chat fine-tuning (SFT): a causal LM learns the assistant turns of conversations, through the one Trainer.

Start from `--model` (its tokenizer and chat template; the default template if it has none) or train a
`--preset` from scratch with a char-level tokenizer and the ChatML template. Without `--data` the
built-in synthetic conversations are used, with their held-out split for exact-match scoring.
"""
from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from pathlib import Path

import tokenizers as hf_tok
import torch

from .. import api
from ..data.chat import ROLES, Conversation, read_conversations
from ..data.chat_dataset import ListDataset, encode_conversations, pack_examples
from ..data.chat_synthetic import chat_split
from ..data.text import train_val_split
from ..models import registry
from ..tasks.chat_sft import ChatSFTTask, greedy_replies
from ..tokenizers import Tokenizer, train_char
from ..tokenizers.chat import CHATML_MARKERS, CHATML_TEMPLATE
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.trainer import Trainer

DEFAULT_PRESET = "llama-micro"
PAD = "<|endoftext|>"
# The from-scratch recipe on the built-in data, measured in benchmarks/chat_learning.py (docs/chat.md): the
# default preset at width 128 with a causal token shift over the 7 previous tokens (lookup's key -> value match
# becomes one attention layer: without it lookup stalls near chance, 0.44), packed rows of 256, Muon at lr 4e-3,
# the uniform task mix (weighting toward lookup did not lift it without the shift: 0.40)
SCRATCH_OVERRIDES = {"n_embd": 128, "token_shift": 7}
SCRATCH_BLOCK_SIZE = 256
SCRATCH_TRAIN = {"batch_size": 16, "lr": 4e-3, "optimizer": "muon", "warmup_steps": 50, "weight_decay": 0.1}


@dataclass
class ChatSFTArgs:
    out: str
    data: str | None = None            # conversations JSONL/JSON; None = built-in synthetic chat data
    val_data: str | None = None        # held-out conversations (default: a split of --data)
    val_fraction: float = 0.05
    model: str | None = None           # start from this checkpoint (its tokenizer and template too)
    preset: str | None = None          # train from scratch (default llama-micro)
    chat_template: str | None = None   # a .jinja file (or template text) replacing the tokenizer's template
    packing: bool = False
    block_size: int | None = None      # context of a model trained from scratch (default: fits the data)
    n_train: int = 20_000              # built-in data sizes
    n_val: int = 500
    style: str = "plain"               # built-in answers: plain | verbose | mixed
    mix: dict[str, float] | None = None  # built-in training data: task weights (default uniform)
    max_new_tokens: int = 32           # reply length for exact-match evaluation
    overrides: dict = field(default_factory=dict)  # extra model config fields


def load_conversations(args: ChatSFTArgs) -> tuple[list[Conversation], list[Conversation]]:
    """(train, held-out) conversations."""
    if args.data is None:
        return (chat_split("train", args.n_train, style=args.style, mix=args.mix),
                chat_split("test", args.n_val, style=args.style))
    train = read_conversations(args.data)
    if args.val_data:
        return train, read_conversations(args.val_data)
    if len(train) < 2:
        raise ValueError(f"{args.data}: one conversation cannot be split into train and held-out; add more "
                         "or pass --val-data")
    order = list(range(len(train)))
    keep, held = train_val_split([str(i) for i in order], args.val_fraction, seed=0)
    return [train[int(i)] for i in keep], [train[int(i)] for i in held]


def chat_tokenizer(conversations: list[Conversation]) -> Tokenizer:
    """A char-level tokenizer over the conversations and every printable ASCII character (so later fine-tuning
    data in English is covered), with ChatML markers (eos = <|im_end|> ends each turn) and the role names as
    single tokens, so a turn header is three tokens."""
    texts = [m["content"] for c in conversations for m in c.messages] + [string.printable]
    tok = train_char(texts, {"eos": CHATML_MARKERS[1], "pad": PAD}, chat_markers=CHATML_MARKERS)
    tok.backend.add_tokens([hf_tok.AddedToken(role, normalized=False) for role in ROLES])
    tok.chat_template = CHATML_TEMPLATE
    return tok


def _template_text(value: str) -> str:
    path = Path(value)
    if value.endswith(".jinja") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"chat template file not found: {path}")
        return path.read_text(encoding="utf-8")
    return value


def make_tokenizer(args: ChatSFTArgs, train: list[Conversation], resume: bool) -> Tokenizer:
    out = Path(args.out)
    if resumable(out, resume):
        return api.load_tokenizer(out)
    tok = api.load_tokenizer(args.model) if args.model else chat_tokenizer(train)
    if args.chat_template:
        tok.chat_template = _template_text(args.chat_template)
    return tok


def make_model(args: ChatSFTArgs, tokenizer: Tokenizer, longest: int) -> torch.nn.Module:
    if args.model:
        model = api.load(args.model)
        if model.config.vocab_size < tokenizer.vocab_size:
            raise ValueError(f"the tokenizer of {args.model} has {tokenizer.vocab_size} tokens but the model's "
                             f"embedding only {model.config.vocab_size}")
        return model.train()
    fields = {"vocab_size": tokenizer.vocab_size, **args.overrides}
    fields["block_size"] = args.block_size or max(64, 64 * math.ceil(longest / 64))
    fam, cfg = registry.preset_config(args.preset or DEFAULT_PRESET, **fields)
    model = registry.family(fam).model_cls(cfg)
    if not hasattr(model, "context_length"):
        raise ValueError(f"preset {args.preset!r} is a {fam} model, not a causal language model")
    return model


def build_datasets(args: ChatSFTArgs, tokenizer: Tokenizer, train: list[Conversation], val: list[Conversation],
                   context: int) -> tuple[ListDataset, ListDataset, dict]:
    """Encoded (and optionally packed) training set, held-out set with prompts and answers, and counts."""
    tr = encode_conversations(tokenizer, train, max_len=context + 1)
    va = encode_conversations(tokenizer, val, max_len=context + 1, with_prompts=True)
    if not tr.examples:
        raise ValueError(f"no training conversation fits the context of {context} tokens (the longest has "
                         f"{tr.longest}); use a model with a longer context")
    items = pack_examples(tr.examples, context) if args.packing else tr.examples
    info = {"train_conversations": len(tr.examples), "val_conversations": len(va.examples),
            "dropped_too_long": tr.dropped + va.dropped, "train_rows": len(items),
            "assistant_tokens": int(sum(int((e["labels"] != -100).sum()) for e in tr.examples))}
    return ListDataset(items), ListDataset(va.examples), info


def train_chat(args: ChatSFTArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Fine-tune (or resume) and return the trainer summary with data counts."""
    if args.packing and cfg.activation_checkpointing:
        raise ValueError("--packing cannot be combined with --activation-checkpointing (the packed mask is "
                         "installed for the forward pass only)")
    torch.manual_seed(cfg.seed)
    train, val = load_conversations(args)
    tokenizer = make_tokenizer(args, train, resume)
    longest = max(len(tokenizer.encode_chat(c.messages, tools=c.tools)) for c in train[:2000])
    model = make_model(args, tokenizer, longest)
    train_set, val_set, info = build_datasets(args, tokenizer, train, val, model.context_length)
    task = ChatSFTTask(tokenizer, args.max_new_tokens)
    meta = {"chat": {"packing": args.packing, "data": args.data or "builtin"}}
    summary = Trainer(model, task, train_set, val_set, cfg, args.out, tokenizer=tokenizer, meta=meta).fit(resume=resume)
    summary.update(info, parameters=sum(p.numel() for p in model.parameters()))
    return summary


def evaluate_chat(model, tokenizer, conversations: list[Conversation], batch_size: int = 64,
                  max_new_tokens: int = 32, examples: int = 3) -> dict:
    """Greedy reply to each conversation's last prompt; exact match against its last assistant message."""
    prompts, answers = [], []
    for c in conversations:
        if c.messages[-1]["role"] != "assistant":
            raise ValueError(f"{c.source}: the conversation must end with the assistant reply to score")
        prompts.append(tokenizer.apply_chat_template(c.messages[:-1], add_generation_prompt=True, tools=c.tools,
                                                     tokenize=True))
        answers.append(c.messages[-1]["content"])
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else (tokenizer.eos_id or 0)
    replies = []
    for s in range(0, len(prompts), batch_size):
        replies += greedy_replies(model, prompts[s:s + batch_size], tokenizer.decode, tokenizer.eos_ids, pad,
                                  max_new_tokens)
    hits = [r.strip() == a.strip() for r, a in zip(replies, answers)]
    shown = [{"prompt": c.messages[-2]["content"], "reply": r, "answer": a}
             for c, r, a in list(zip(conversations, replies, answers))[:examples]]
    return {"exact_match": sum(hits) / max(len(hits), 1), "n": len(hits), "replies": replies, "examples": shown}
