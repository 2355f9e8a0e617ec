"""VQA fine-tuning: data -> answer vocabulary -> tokenizer -> fusion model (fresh, or from a pretrained
fusion / ViLT checkpoint) -> Trainer; then the official VQA accuracy on the held-out splits."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .. import api
from ..data.vqa import VQAExample, read_vqa
from ..data.vqa_answers import AnswerVocab
from ..data.vqa_dataset import FusionImageTransform, VQADataset
from ..io import load_state
from ..models import registry
from ..models.fusion import FusionModel
from ..tasks.vqa import VQATask, evaluate_vqa
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from .fusion_common import make_tokenizer
from .vqa_data import load_examples

DEFAULT_PRESET = "fusion-small"


@dataclass
class VQAFinetuneArgs:
    out: str
    data: str | None = None          # shapes folder, VQAv2 questions .json or .jsonl; None = built-in shapes
    val_data: str | None = None      # default: the `val` split of a folder, else 10% of the training data
    test_splits: list[str] = field(default_factory=lambda: ["test", "test_unseen"])  # scored after training
    image_root: str | None = None
    preset: str | None = None
    model: str | None = None         # a `lingvis pretrain fusion` run/checkpoint or a ViLT folder
    tokenizer: str | None = None     # tokenizer folder; default: the model's, else WordPiece on the questions
    vocab_size: int = 1000
    min_answer_count: int = 1
    max_answers: int | None = None
    skip_bad: bool = False
    shapes_train: int = 4000         # built-in data sizes
    shapes_eval: int = 500
    generative: bool = False         # train the captioner to generate answers instead of a classifier
    overrides: dict = field(default_factory=dict)


def _fresh_answers_model(base: FusionModel, answers: list[str], overrides: dict) -> FusionModel:
    """A VQA model initialised from `base` (a pretrained fusion model): same trunk, new answer head."""
    cfg = replace(base.config, answers=list(answers), mlm_head=False, itm_head=False, mif_head=False,
                  itc_head=False, pooler=True, **overrides)
    model = FusionModel(cfg)
    own = model.state_dict()
    state = {k: v for k, v in base.state_dict().items() if k in own and not k.startswith("vqa_head.")}
    new_head = tuple(k for k in own if k.startswith(("vqa_head.", "vqa_readout.")))
    load_state(model, state, source="pretrained fusion model",
               allow_missing=(*new_head, "pooler.dense.weight", "pooler.dense.bias"))
    return model


def make_model(args: VQAFinetuneArgs, tokenizer, vocab: AnswerVocab) -> FusionModel:
    if args.model:
        base = api.load(args.model)
        if not isinstance(base, FusionModel):
            raise ValueError(f"{args.model} holds a {type(base).__name__}, not a fusion model")
        if base.config.vocab_size < tokenizer.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only "
                             f"{base.config.vocab_size}")
        if base.config.answers == vocab.answers and not args.overrides:
            return base.train()
        return _fresh_answers_model(base, vocab.answers, args.overrides).train()
    _, cfg = registry.preset_of(args.preset or DEFAULT_PRESET, "fusion", vocab_size=tokenizer.vocab_size,
                                answers=vocab.answers, pad_token_id=tokenizer.pad_id, **args.overrides)
    return FusionModel(cfg)


def build_vocab(args: VQAFinetuneArgs, train: list[VQAExample], resume: bool) -> AnswerVocab:
    """Resuming keeps the checkpoint's answers; otherwise the training answers decide."""
    if resumable(args.out, resume):
        return AnswerVocab(api.load(args.out).config.answers)
    unlabelled = [e.question_id for e in train if not e.answers]
    if unlabelled:
        raise ValueError(f"{len(unlabelled)} training questions have no answers (e.g. question "
                         f"{unlabelled[0]!r}); VQA training needs answers")
    return AnswerVocab.build([e.answers for e in train], args.min_answer_count, args.max_answers)


def finetune_vqa(args: VQAFinetuneArgs, cfg: TrainConfig, resume: bool = False, log=print) -> dict:
    """Train (or resume) the answer classifier; returns the trainer summary, vocabulary coverage and
    the official VQA accuracy (overall and per question type) of the best checkpoint on each test split.
    With `args.generative` the captioner learns to generate the answers instead (recipes.vqa_generative)."""
    if args.generative:
        from .vqa_generative import finetune_generative_vqa

        return finetune_generative_vqa(args, cfg, resume, log)
    torch.manual_seed(cfg.seed)
    train, val, folder = load_examples(args)
    vocab = build_vocab(args, train, resume)
    coverage = {"train": vocab.coverage([e.answers for e in train]), "val": vocab.coverage([e.answers for e in val])}
    for name, cov in coverage.items():
        log(f"[vqa] {cov.message(name)}")
    tokenizer = make_tokenizer(args.out, args.tokenizer or args.model, [e.question for e in train],
                               args.vocab_size, resume)
    model = make_model(args, tokenizer, vocab)
    transform = FusionImageTransform.for_model(model.config)
    task = VQATask(tokenizer, model.config.max_text_len)
    trainer = Trainer(model, task, VQADataset(train, transform, vocab), VQADataset(val, transform, vocab), cfg,
                      args.out, tokenizer=tokenizer, meta={"task": "vqa"})
    summary = trainer.fit(resume=resume)
    summary.update(answers=len(vocab), train_questions=len(train), val_questions=len(val),
                   oov={k: {"questions": c.questions, "out_of_vocab": c.out_of_vocab} for k, c in coverage.items()},
                   parameters=sum(p.numel() for p in model.parameters()))
    if folder is not None:
        summary["test"] = score_splits(args.out, folder, args.test_splits, args.image_root)
    (Path(args.out) / "vqa_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def score_splits(run: str | Path, folder: Path, splits: list[str], image_root: str | None = None) -> dict:
    """Official VQA accuracy of the run's best checkpoint on each available split of `folder`."""
    model, tokenizer = api.load(run), api.load_tokenizer(run)
    out = {}
    for split in splits:
        if (folder / f"questions_{split}.json").is_file():
            res = evaluate_vqa(model, tokenizer, read_vqa(folder, split, image_root))
            out[split] = {"overall": res.overall, "per_question_type": res.per_question_type,
                          "questions": len(res.per_question)}
    return out
