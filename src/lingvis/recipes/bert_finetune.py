"""BERT fine-tuning through the one trainer: sequence classification, BIO tagging, extractive QA.

Data: the user's files (classification CSV/TSV/JSONL, CoNLL, SQuAD JSON) or the built-in sets. The
best checkpoint is scored on the test split (or on validation when there is no test file) and the
scores are returned and written to `<out>/test_metrics.json`."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import api
from ..data import builtin_text as builtin
from ..data.tasks_text import check_labels, parse_squad, read_classification, read_conll, read_squad
from ..eval import accuracy, entity_scores, precision_recall_f1
from ..tasks.classify import ClassifyTask, encode_classification, predict_classify
from ..tasks.qa import QATask, evaluate_squad
from ..tasks.qa_features import QAWindows, encode_qa
from ..tasks.tag import TagTask, encode_tagging, predict_tags
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from .bert import build_model, build_tokenizer

TASKS = ("classify", "tag", "qa")


@dataclass
class FinetuneArgs:
    task: str                          # classify | tag | qa
    out: str
    data: str | None = None            # training file; None = the built-in set
    val_data: str | None = None        # default: 10% of the training examples
    test_data: str | None = None
    model: str | None = None           # pretrained BERT checkpoint (its tokenizer too)
    preset: str | None = None          # from scratch (WordPiece trained on the training text)
    tokenizer: str | None = None
    vocab_size: int = 4000
    lowercase: bool | None = None      # WordPiece trained here: lower-case (default: yes, except for tagging)
    max_len: int = 128
    stride: int = 32                   # QA: tokens shared by consecutive context windows
    squad_version: str = "v1.1"        # built-in QA set: v1.1 or v2.0 (with unanswerable questions)
    text_field: str = "text"
    pair_field: str = "text_pair"
    label_field: str = "label"
    overrides: dict = field(default_factory=dict)


def _split_off(items: list, fraction: float = 0.1, seed: int = 0) -> tuple[list, list]:
    idx = list(range(len(items)))
    random.Random(seed).shuffle(idx)
    n_val = max(1, round(len(items) * fraction))
    if len(items) < 2:
        raise ValueError("need at least 2 training examples to hold out a validation split")
    val = set(idx[:n_val])
    return [x for i, x in enumerate(items) if i not in val], [x for i, x in enumerate(items) if i in val]


def _splits(args: FinetuneArgs, read, builtin_splits):
    if args.data is None:
        return builtin_splits()
    train = read(args.data)
    train, val = (train, read(args.val_data)) if args.val_data else _split_off(train)
    return train, val, read(args.test_data) if args.test_data else None


# ---- per-task data -----------------------------------------------------------------------------------
def classify_data(args: FinetuneArgs):
    read = lambda p: read_classification(p, args.text_field, args.pair_field, args.label_field)  # noqa: E731

    def builtin_splits():
        s = builtin.genre_passages()
        return s["train"], s["val"], s["test"]
    train, val, test = _splits(args, read, builtin_splits)
    labels = sorted({ex.label for ex in train})
    for part in (val, test or []):
        check_labels(part, labels)
    texts = [ex.text for ex in train] + [ex.text_pair for ex in train if ex.text_pair]
    return train, val, test, labels, texts


def tag_data(args: FinetuneArgs):
    def builtin_splits():
        return (builtin.templated_tagging(600, "train"), builtin.templated_tagging(100, "val"),
                builtin.templated_tagging(200, "test"))
    train, val, test = _splits(args, read_conll, builtin_splits)
    labels = ["O"] + sorted({t for s in train for t in s.tags} - {"O"})
    return train, val, test, labels, [" ".join(s.tokens) for s in train]


def qa_data(args: FinetuneArgs):
    found: list[str] = []  # versions of the files read

    def read(path):
        examples, version = read_squad(path)
        found.append(version)
        return examples

    def builtin_splits():
        parts = [parse_squad(builtin.templated_squad(n, split, args.squad_version), f"builtin-qa-{split}")[0]
                 for n, split in ((300, "train"), (40, "val"), (80, "test"))]
        return tuple(parts)
    train, val, test = _splits(args, read, builtin_splits)
    version = ("v2.0" if "v2.0" in found else "v1.1") if found else args.squad_version
    return train, val, test, version, [ex.context for ex in train] + [ex.question for ex in train]


# ---- recipe ------------------------------------------------------------------------------------------
def finetune(args: FinetuneArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Fine-tune, then score the best checkpoint on the test split (or validation)."""
    if args.task not in TASKS:
        raise ValueError(f"unknown fine-tuning task {args.task!r}; choose from {', '.join(TASKS)}")
    torch.manual_seed(cfg.seed)
    loaders = {"classify": classify_data, "tag": tag_data, "qa": qa_data}
    train, val, test, extra, texts = loaders[args.task](args)
    lowercase = args.task != "tag" if args.lowercase is None else args.lowercase
    tok = build_tokenizer(args.out, args.model, args.tokenizer, texts, args.vocab_size, lowercase, resume)
    pad = tok.pad_id or 0
    if args.task == "qa":
        windows = QAWindows(max_len=args.max_len, stride=args.stride)
        no_answer = extra == "v2.0"
        model = build_model(args.preset, args.model, tok, "qa", args.max_len, no_answer=no_answer,
                            overrides=args.overrides)
        task = QATask(pad, val, windows, extra, no_answer)
        train_set, val_set = encode_qa(tok, train, windows), encode_qa(tok, val, windows)
        meta = {"task": "qa", "max_len": args.max_len, "stride": args.stride, "squad_version": extra}
    else:
        labels = extra
        model = build_model(args.preset, args.model, tok, args.task, args.max_len, labels=labels,
                            overrides=args.overrides)
        meta = {"task": args.task, "max_len": args.max_len}
        if args.task == "classify":
            task = ClassifyTask(pad, labels)
            train_set, meta["truncated_train_examples"] = encode_classification(tok, train, labels, args.max_len)
            val_set, _ = encode_classification(tok, val, labels, args.max_len)
        else:
            task = TagTask(pad, labels)
            train_set, val_set = (encode_tagging(tok, d, labels, args.max_len) for d in (train, val))
    summary = Trainer(model, task, train_set, val_set, cfg, args.out, tokenizer=tok, meta=meta).fit(resume=resume)
    best, best_tok = api.load(args.out), api.load_tokenizer(args.out)
    split = "test" if test else "val"
    scores = score(args.task, best, best_tok, test or val, args, extra)
    summary.update({f"{split}_metrics": scores, "train_examples": len(train), f"{split}_examples": len(test or val),
                    **{k: v for k, v in meta.items() if k.startswith("truncated")}})
    if args.data is None and args.task in ("tag", "qa"):  # built-in sets: also names never seen in training
        summary["test_unseen_metrics"] = score(args.task, best, best_tok, unseen_split(args), args, extra)
    (Path(args.out) / "test_metrics.json").write_text(json.dumps(
        {"split": split, **scores, **({"test_unseen": summary["test_unseen_metrics"]}
                                      if "test_unseen_metrics" in summary else {})}, indent=2))
    return summary


def unseen_split(args: FinetuneArgs) -> list:
    if args.task == "tag":
        return builtin.templated_tagging(200, "test_unseen")
    return parse_squad(builtin.templated_squad(80, "test_unseen", args.squad_version), "builtin-qa-test_unseen")[0]


def score(task: str, model, tok, examples: list, args: FinetuneArgs, extra) -> dict:
    """Held-out scores: accuracy + macro-F1 (classify), entity P/R/F1 (tag), official EM/F1 (qa)."""
    if task == "classify":
        preds = predict_classify(model, tok, [e.text for e in examples], [e.text_pair for e in examples], args.max_len)
        gold, pred = [e.label for e in examples], [p["label"] for p in preds]
        return {"accuracy": accuracy(gold, pred), "macro_f1": precision_recall_f1(gold, pred, "macro").f1,
                "chance": 1 / len(model.config.label_names)}
    if task == "tag":
        pred = predict_tags(model, tok, [s.tokens for s in examples], args.max_len)
        s = entity_scores([x.tags for x in examples], pred)
        return {"precision": s.precision, "recall": s.recall, "f1": s.f1, "entities": s.support}
    res = evaluate_squad(model, tok, examples, extra, max_len=args.max_len, stride=args.stride)
    return {k: v for k, v in res.items() if v is not None}
