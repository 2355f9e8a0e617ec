"""GPT pretraining on the user's text or the embedded Shakespeare corpus."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import api
from ..data.corpus import shakespeare_plays
from ..data.packing import PackedLMDataset, encode_documents
from ..data.text import read_texts, train_val_split
from ..data.windows import WindowLMDataset
from ..models import registry
from ..tasks.lm import CausalLMTask
from ..tokenizers import Tokenizer, train_bpe, train_char
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.trainer import Trainer

DEFAULT_PRESET = "gpt-micro"


@dataclass(frozen=True)
class GPTDefaults:
    """What `lingvis pretrain gpt` trains when the command line does not say: a model shape over
    DEFAULT_PRESET (used without --preset), context, batch, learning-rate schedule and the stride of the
    training windows. One row per budget range, chosen by benchmarks/gpt_budget_sweep.py on the built-in
    Shakespeare plays (docs/training.md has the sweep)."""

    up_to_minutes: float      # serves --max-minutes up to this (math.inf: longer budgets and step-only runs)
    model: dict               # fields over DEFAULT_PRESET
    block_size: int
    batch_size: int
    lr: float
    warmup_steps: int
    min_lr: float | None = None
    beta2: float = 0.99        # AdamW (nanoGPT's choice for small character models)
    optimizer: str = "adamw"   # adamw | muon (lingvis.train.optim)
    stride: int | None = None  # training windows start every `stride` tokens (None: non-overlapping blocks)


BUDGET_DEFAULTS = (
    GPTDefaults(3.0, dict(n_layer=4, n_head=4, n_embd=128), block_size=64, batch_size=32, lr=8e-3, warmup_steps=50,
                optimizer="muon"),
    GPTDefaults(8.0, dict(n_layer=4, n_head=4, n_embd=128), block_size=64, batch_size=32, lr=8e-3, warmup_steps=50,
                optimizer="muon"),
    GPTDefaults(20.0, dict(n_layer=4, n_head=4, n_embd=256), block_size=128, batch_size=16, lr=4e-3, warmup_steps=50,
                optimizer="muon"),
    GPTDefaults(math.inf, dict(n_layer=4, n_head=4, n_embd=256), block_size=128, batch_size=16, lr=1e-3,
                warmup_steps=100),
)


def defaults_for(max_minutes: float | None) -> GPTDefaults:
    """The defaults row serving a budget of `max_minutes` (None: a run bounded by steps only)."""
    minutes = math.inf if max_minutes is None else max_minutes
    return next(d for d in BUDGET_DEFAULTS if minutes <= d.up_to_minutes)


@dataclass
class GPTPretrainArgs:
    out: str
    data: str | None = None           # file, folder or JSONL; None = embedded Shakespeare
    text_field: str = "text"
    preset: str | None = None
    model: str | None = None          # start from this checkpoint (its tokenizer too)
    tokenizer: str = "char"           # char | bpe | path to a tokenizer folder/file
    vocab_size: int = 2048            # for bpe
    block_size: int | None = None     # context; default the preset's (without a preset: the budget's default)
    stride: int | None = None         # training windows every `stride` tokens (None: non-overlapping blocks)
    val_fraction: float = 0.1
    overrides: dict = field(default_factory=dict)  # extra model config fields (n_layer=..., dropout=...)


def load_corpus(args: GPTPretrainArgs) -> tuple[list[str], list[str]]:
    texts = read_texts(args.data, args.text_field) if args.data else [p.text for p in shakespeare_plays()]
    return train_val_split(texts, args.val_fraction, seed=0)


def make_tokenizer(args: GPTPretrainArgs, train_texts: list[str], resume: bool) -> Tokenizer:
    out = Path(args.out)
    if resumable(out, resume):
        return api.load_tokenizer(out)
    if args.model:
        return api.load_tokenizer(args.model)
    if args.tokenizer == "char":
        return train_char(train_texts)
    if args.tokenizer == "bpe":
        return train_bpe(train_texts, args.vocab_size)
    return Tokenizer.load(args.tokenizer)


def make_model(args: GPTPretrainArgs, tokenizer: Tokenizer, max_minutes: float | None = None) -> torch.nn.Module:
    """The model to train: a checkpoint (--model), or a fresh preset. Without a preset, DEFAULT_PRESET in
    the shape of the budget's defaults. A fresh model takes the erf GELU where its preset has the tanh one
    (GPT-2's checkpoint format): cheaper, and it exports to GPT-2 files all the same."""
    if args.model:
        model = api.load(args.model)
        if model.config.vocab_size < tokenizer.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only "
                             f"{model.config.vocab_size}")
        return model.train()
    defaults = defaults_for(max_minutes)
    fields = {} if args.preset else {**defaults.model, "block_size": defaults.block_size}
    fields.update(vocab_size=tokenizer.vocab_size, **args.overrides)
    if args.block_size:
        fields["block_size"] = args.block_size
    fam, cfg = registry.preset_of(args.preset or DEFAULT_PRESET, "gpt", **fields)
    if cfg.activation == "gelu_tanh" and "activation" not in args.overrides:
        cfg = dataclasses.replace(cfg, activation="gelu")
    return registry.family(fam).model_cls(cfg)


def pretrain_gpt(args: GPTPretrainArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume) and return the trainer summary plus the paths it wrote."""
    torch.manual_seed(cfg.seed)
    train_texts, val_texts = load_corpus(args)
    tokenizer = make_tokenizer(args, train_texts, resume)
    model = make_model(args, tokenizer, cfg.max_minutes)
    T = model.config.block_size
    ids = encode_documents(tokenizer, train_texts)
    train_set = WindowLMDataset(ids, T, args.stride) if args.stride else PackedLMDataset(ids, T)
    val_set = PackedLMDataset(encode_documents(tokenizer, val_texts), T)
    trainer = Trainer(model, CausalLMTask(), train_set, val_set, cfg, args.out, tokenizer=tokenizer)
    summary = trainer.fit(resume=resume)
    summary.update(train_blocks=len(train_set), val_blocks=len(val_set), parameters=sum(
        p.numel() for p in model.parameters()))
    return summary
