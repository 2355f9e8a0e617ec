"""GPT pretraining on the user's text or the embedded Shakespeare corpus."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import api
from ..data.corpus import shakespeare_plays
from ..data.packing import PackedLMDataset, encode_documents
from ..data.text import read_texts, train_val_split
from ..models import registry
from ..tasks.lm import CausalLMTask
from ..tokenizers import Tokenizer, train_bpe, train_char
from ..train.config import TrainConfig
from ..train.trainer import Trainer

DEFAULT_PRESET = "gpt-micro"


@dataclass
class GPTPretrainArgs:
    out: str
    data: str | None = None           # file, folder or JSONL; None = embedded Shakespeare
    text_field: str = "text"
    preset: str | None = None
    model: str | None = None          # start from this checkpoint (its tokenizer too)
    tokenizer: str = "char"           # char | bpe | path to a tokenizer folder/file
    vocab_size: int = 2048            # for bpe
    block_size: int | None = None     # context; default the preset's
    val_fraction: float = 0.1
    overrides: dict = field(default_factory=dict)  # extra model config fields (n_layer=..., dropout=...)


def load_corpus(args: GPTPretrainArgs) -> tuple[list[str], list[str]]:
    texts = read_texts(args.data, args.text_field) if args.data else [p.text for p in shakespeare_plays()]
    return train_val_split(texts, args.val_fraction, seed=0)


def make_tokenizer(args: GPTPretrainArgs, train_texts: list[str], resume: bool) -> Tokenizer:
    out = Path(args.out)
    if resume and (out / "checkpoints").is_dir():
        return api.load_tokenizer(out)
    if args.model:
        return api.load_tokenizer(args.model)
    if args.tokenizer == "char":
        return train_char(train_texts)
    if args.tokenizer == "bpe":
        return train_bpe(train_texts, args.vocab_size)
    return Tokenizer.load(args.tokenizer)


def make_model(args: GPTPretrainArgs, tokenizer: Tokenizer) -> torch.nn.Module:
    if args.model:
        model = api.load(args.model)
        if model.config.vocab_size < tokenizer.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only "
                             f"{model.config.vocab_size}")
        return model.train()
    fields = {"vocab_size": tokenizer.vocab_size, **args.overrides}
    if args.block_size:
        fields["block_size"] = args.block_size
    fam, cfg = registry.preset_config(args.preset or DEFAULT_PRESET, **fields)
    if fam != "gpt":
        raise ValueError(f"preset {args.preset!r} is a {fam} model, not gpt")
    return registry.family(fam).model_cls(cfg)


def pretrain_gpt(args: GPTPretrainArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume) and return the trainer summary plus the paths it wrote."""
    torch.manual_seed(cfg.seed)
    train_texts, val_texts = load_corpus(args)
    tokenizer = make_tokenizer(args, train_texts, resume)
    model = make_model(args, tokenizer)
    T = model.config.block_size
    train_set = PackedLMDataset(encode_documents(tokenizer, train_texts), T)
    val_set = PackedLMDataset(encode_documents(tokenizer, val_texts), T)
    trainer = Trainer(model, CausalLMTask(), train_set, val_set, cfg, args.out, tokenizer=tokenizer)
    summary = trainer.fit(resume=resume)
    summary.update(train_blocks=len(train_set), val_blocks=len(val_set), parameters=sum(
        p.numel() for p in model.parameters()))
    return summary
