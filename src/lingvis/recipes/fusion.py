"""Fusion pretraining: image-caption pairs -> WordPiece tokenizer -> fusion model with MLM + ITM
(+ masked image-feature) heads -> Trainer. The run folder is a starting point for `finetune_vqa`."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .. import api
from ..data.image_text import read_records
from ..data.vqa_dataset import CaptionPairs, FusionImageTransform
from ..io import load_state
from ..models import registry
from ..models.fusion import FusionModel
from ..tasks.fusion_pretrain import FusionPretrainTask
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from .fusion_common import ensure_shapes, make_tokenizer

DEFAULT_PRESET = "fusion-small"


@dataclass
class FusionPretrainArgs:
    out: str
    data: str | None = None          # shapes folder, COCO captions JSON, JSONL, CSV/TSV or .tar shards
    val_data: str | None = None      # default: captions_val.json of a folder, else 5% of the training images
    image_root: str | None = None
    preset: str | None = None
    model: str | None = None         # continue from a fusion checkpoint (heads added where missing)
    tokenizer: str | None = None     # tokenizer folder; default: the model's, else WordPiece on the text
    vocab_size: int = 1000
    mlm_prob: float = 0.15
    whole_word: bool = False         # mask every piece of a chosen word together (BERT whole-word masking)
    itm_prob: float = 0.5
    mif_prob: float = 0.0            # > 0: masked image-feature regression on this fraction of grid tokens
    itc: bool = True                 # image-text contrastive loss over unimodal passes (aligns before fusing)
    hard_fraction: float = 0.5       # share of ITM negatives that are hard (most similar caption in the batch)
    shapes_train: int = 4000
    shapes_eval: int = 500
    overrides: dict = field(default_factory=dict)


def _split_by_image(records: list, fraction: float = 0.05) -> tuple[list, list]:
    keys = sorted({r.key for r in records})
    perm = torch.randperm(len(keys), generator=torch.Generator().manual_seed(0)).tolist()
    val_keys = {keys[i] for i in perm[:max(1, int(len(keys) * fraction))]}
    return [r for r in records if r.key not in val_keys], [r for r in records if r.key in val_keys]


def load_pairs(args: FusionPretrainArgs) -> tuple[list, list, list[str]]:
    """(train records, val records, texts for the tokenizer). A shapes folder also lends its training
    questions to the tokenizer, so that the same tokenizer serves VQA fine-tuning."""
    data = Path(args.data) if args.data else ensure_shapes(Path(args.out) / "data", args.shapes_train,
                                                          args.shapes_eval)
    extra: list[str] = []
    if data.is_dir() and (data / "captions_train.json").is_file():
        train, _ = read_records(data / "captions_train.json", image_root=args.image_root)
        val = read_records(data / "captions_val.json", image_root=args.image_root)[0] \
            if (data / "captions_val.json").is_file() else None
        questions = data / "questions_train.json"
        if questions.is_file():
            extra = [q["question"] for q in json.loads(questions.read_text())["questions"]]
    else:
        train, _ = read_records(data, image_root=args.image_root)
        val = None
    if args.val_data:
        val = read_records(args.val_data, image_root=args.image_root)[0]
    if val is None:
        train, val = _split_by_image(train)
    return train, val, [r.text for r in train] + extra


def make_model(args: FusionPretrainArgs, tokenizer) -> FusionModel:
    heads = {"mlm_head": True, "itm_head": True, "pooler": True, "mif_head": args.mif_prob > 0, "itc_head": args.itc}
    if args.model:
        base = api.load(args.model)
        if not isinstance(base, FusionModel):
            raise ValueError(f"{args.model} holds a {type(base).__name__}, not a fusion model")
        if base.config.vocab_size < tokenizer.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model only "
                             f"{base.config.vocab_size}")
        model = FusionModel(replace(base.config, **heads, **args.overrides))
        own = model.state_dict()
        state = {k: v for k, v in base.state_dict().items() if k in own}
        load_state(model, state, source=str(args.model),
                   allow_missing=tuple(k for k in own if k.split(".")[0] in ("mlm", "itm", "mif", "itc", "pooler")
                                       or k in ("image.mask_token", "logit_scale")))
        return model.train()
    _, cfg = registry.preset_of(args.preset or DEFAULT_PRESET, "fusion", vocab_size=tokenizer.vocab_size,
                                pad_token_id=tokenizer.pad_id, **heads, **args.overrides)
    return FusionModel(cfg)


def pretrain_fusion(args: FusionPretrainArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume) MLM + ITM (+ masked image features); returns the trainer summary."""
    torch.manual_seed(cfg.seed)
    train, val, texts = load_pairs(args)
    tokenizer = make_tokenizer(args.out, args.tokenizer or args.model, texts, args.vocab_size, resume)
    model = make_model(args, tokenizer)
    transform = FusionImageTransform.for_model(model.config)
    task = FusionPretrainTask(tokenizer, model.config.max_text_len, model.config.image_token_count, args.mlm_prob,
                              args.itm_prob, args.mif_prob, whole_word=args.whole_word,
                              hard_fraction=args.hard_fraction)
    trainer = Trainer(model, task, CaptionPairs(train, transform), CaptionPairs(val, transform, eval=True), cfg,
                      args.out, tokenizer=tokenizer, meta={"task": "fusion_pretrain"})
    summary = trainer.fit(resume=resume)
    summary.update(train_pairs=len(train), val_pairs=len(val), parameters=sum(p.numel() for p in model.parameters()))
    (Path(args.out) / "pretrain_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
