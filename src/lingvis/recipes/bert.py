"""BERT pretraining (masked LM + next-sentence prediction) on the user's text or embedded Shakespeare,
and the pieces the fine-tuning recipes share (tokenizer and model set-up)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import api
from ..data.builtin_text import TEST_PLAYS
from ..data.corpus import shakespeare_plays
from ..data.mlm import MaskingConfig, MLMCollator, SentencePairDataset, tokenize_documents
from ..data.text import read_texts, train_val_split
from ..models import registry
from ..models.bert import Bert, with_head
from ..tasks.mlm import PretrainTask
from ..tokenizers import Tokenizer, train_wordpiece
from ..tokenizers.wordpiece import continuation_flags
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.trainer import Trainer

DEFAULT_PRESET = "bert-mini"


@dataclass
class BertPretrainArgs:
    out: str
    data: str | None = None           # file, folder or JSONL (one document each); None = embedded Shakespeare
                                      # (33 plays; validation on the genre task's 3 test plays)
    text_field: str = "text"
    preset: str | None = None         # default bert-mini
    model: str | None = None          # continue from this checkpoint (and its tokenizer)
    tokenizer: str | None = None      # tokenizer folder/file; default: train WordPiece on the training text
    vocab_size: int = 8000
    lowercase: bool = True
    max_len: int = 128
    nsp: bool = True
    whole_word: bool = False
    mlm_prob: float = 0.15
    dupe_factor: int = 2
    val_fraction: float = 0.1
    overrides: dict = field(default_factory=dict)  # extra model config fields (n_layer=..., dropout=...)


def build_tokenizer(out: str | Path, model: str | None, tokenizer: str | None, texts: list[str], vocab_size: int,
                    lowercase: bool = True, resume: bool = False) -> Tokenizer:
    """The run's tokenizer: resumed run's, the checkpoint's, a given one, or WordPiece trained on `texts`."""
    out = Path(out)
    if resumable(out, resume):
        return api.load_tokenizer(out)
    if model:
        return api.load_tokenizer(model)
    if tokenizer:
        return Tokenizer.load(tokenizer)
    return train_wordpiece(texts, vocab_size, lowercase=lowercase)


def build_model(preset: str | None, model: str | None, tokenizer: Tokenizer, head: str, max_len: int,
                labels: list[str] | None = None, no_answer: bool = False, overrides: dict | None = None) -> Bert:
    """A fresh preset model sized to the tokenizer, or a checkpoint re-headed for `head`."""
    if model:
        base = api.load_as(model, "bert", "BERT")
        if base.config.vocab_size < tokenizer.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only {base.config.vocab_size}")
        if max_len > base.config.max_positions:
            raise ValueError(f"max_len {max_len} exceeds the checkpoint's max_positions {base.config.max_positions}")
        return with_head(base, head, labels=labels, no_answer=no_answer, **(overrides or {})).train()
    fields = {"vocab_size": tokenizer.vocab_size, "head": head, "labels": labels, "no_answer": no_answer,
              "pad_id": tokenizer.pad_id or 0, "pooler": head in ("none", "pretraining", "classify"),
              **(overrides or {})}
    _, cfg = registry.preset_of(preset or DEFAULT_PRESET, "bert", **fields)
    if max_len > cfg.max_positions:
        cfg.max_positions = max_len
    return Bert(cfg)


def mlm_collator(tokenizer: Tokenizer, masking: MaskingConfig) -> MLMCollator:
    for role in ("pad", "cls", "sep", "mask"):
        if tokenizer.special_tokens.get(role) is None:
            raise ValueError(f"BERT pretraining needs a {role} token; the tokenizer has {tokenizer.special_tokens}")
    specials = [tokenizer.token_to_id(t) for t in tokenizer.special_tokens.values()]
    return MLMCollator(tokenizer.vocab_size, tokenizer.pad_id, tokenizer.mask_id, specials,
                       continuation_flags(tokenizer) if masking.whole_word else None, masking)


def load_corpus(args: BertPretrainArgs) -> tuple[list[str], list[str]]:
    """(train, val) texts. Embedded: the 36 Folio plays; validation = the genre task's test plays, so a model
    pretrained here and fine-tuned on the built-in genre task has never read the plays it is scored on."""
    if args.data:
        return train_val_split(read_texts(args.data, args.text_field), args.val_fraction, seed=0)
    plays = shakespeare_plays(canon=True)
    return ([p.text for p in plays if p.name not in TEST_PLAYS], [p.text for p in plays if p.name in TEST_PLAYS])


def pretrain_bert(args: BertPretrainArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume) with MLM (+ NSP); return the trainer summary plus data sizes."""
    torch.manual_seed(cfg.seed)
    train_texts, val_texts = load_corpus(args)
    tokenizer = build_tokenizer(args.out, args.model, args.tokenizer, train_texts, args.vocab_size, args.lowercase,
                                resume)
    head = "pretraining" if args.nsp else "mlm"
    model = build_model(args.preset, args.model, tokenizer, head, args.max_len, overrides=args.overrides)
    cls, sep = tokenizer.cls_id, tokenizer.sep_id
    make = lambda texts, seed, dupe: SentencePairDataset(  # noqa: E731
        tokenize_documents(tokenizer, texts), cls, sep, args.max_len, args.nsp, dupe, seed=seed)
    train_set, val_set = make(train_texts, 0, args.dupe_factor), make(val_texts, 1, 1)
    collator = mlm_collator(tokenizer, MaskingConfig(mlm_prob=args.mlm_prob, whole_word=args.whole_word))
    trainer = Trainer(model, PretrainTask(collator), train_set, val_set, cfg, args.out, tokenizer=tokenizer)
    summary = trainer.fit(resume=resume)
    summary.update(train_instances=len(train_set), val_instances=len(val_set),
                   parameters=sum(p.numel() for p in model.parameters()))
    return summary
