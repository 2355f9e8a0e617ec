"""CLIP pretraining: image-text data (any supported format) -> tokenizer -> CLIP -> Trainer.

Without `--data` it generates the synthetic shapes set. With `text_tower` the text side is a pretrained
lingvis/HF text encoder (e.g. all-MiniLM-L6-v2), locked by default ("LiT")."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import api
from ..data.images import SafeDataset, SkipCounter
from ..models import registry
from ..models.clip import CLIP
from ..tasks.contrastive import ContrastiveTask
from ..tokenizers import Tokenizer
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from .clip_data import CaptionedImages, load_groups, split_groups, train_word_tokenizer, transform_for

DEFAULT_PRESET = "clip-shapes"


@dataclass
class CLIPPretrainArgs:
    out: str
    data: str | None = None           # COCO json, JSONL, CSV/TSV, webdataset .tar(s) or class folder; None = shapes
    val_data: str | None = None       # held-out pairs; default a split of `data` by image
    preset: str | None = None
    model: str | None = None          # continue from this CLIP checkpoint (and its tokenizer)
    tokenizer: str = "word"           # word | path to a tokenizer folder/file
    text_tower: str | None = None     # a pretrained text encoder folder (LiT)
    unlock_text: bool = False         # fine-tune the pretrained text tower instead of locking it
    image_root: str | None = None
    augment: bool = False             # random resized crop + flip (off for data whose captions say left/right)
    val_fraction: float = 0.05
    max_val: int = 1000
    cache_images: bool = True
    shapes_train: int = 5000          # images generated when no --data is given
    overrides: dict = field(default_factory=dict)  # extra CLIP config fields


def default_shapes_data(out: Path, n_train: int) -> tuple[str, str]:
    from ..data.shapes import generate_shapes

    folder = out / "shapes"
    if not (folder / "captions_train.json").is_file():
        generate_shapes(folder, n_train=n_train, n_val=500, n_test=500)
    return str(folder / "captions_train.json"), str(folder / "captions_val.json")


def make_tokenizer(args: CLIPPretrainArgs, train_texts: list[str], resume: bool) -> Tokenizer:
    out = Path(args.out)
    if resumable(out, resume):
        return api.load_tokenizer(out)
    if args.model:
        return api.load_tokenizer(args.model)
    if args.text_tower:
        return api.load_tokenizer(args.text_tower)
    if args.tokenizer == "word":
        return train_word_tokenizer(train_texts)
    return Tokenizer.load(args.tokenizer)


def _text_tower_fields(tower) -> dict:
    pool = getattr(tower.config, "pooling", "cls")
    return {"text_family": tower.family, "text": dataclasses.asdict(tower.config),
            "text_pool": pool if pool in ("cls", "mean") else "mean", "eos_token_id": None, "bos_token_id": None,
            "pad_token_id": getattr(tower.config, "pad_id", None)}


def make_model(args: CLIPPretrainArgs, tokenizer: Tokenizer) -> CLIP:
    if args.model:
        return api.load_as(args.model, "clip").train()
    _, base = registry.preset_of(args.preset or DEFAULT_PRESET, "clip")
    fields = dataclasses.asdict(base)
    tower = None
    if args.text_tower:
        tower = api.load(args.text_tower)
        if not hasattr(tower, "encode"):
            raise ValueError(f"{args.text_tower} holds a {tower.family} model with no text `encode`; "
                             "pass a text encoder (e.g. a BERT/MiniLM folder)")
        fields.update(_text_tower_fields(tower), lock_text=not args.unlock_text)
    else:
        fields["text"] = {**fields["text"], "vocab_size": tokenizer.vocab_size}
        fields.update(eos_token_id=tokenizer.eos_id, bos_token_id=tokenizer.bos_id, pad_token_id=tokenizer.pad_id)
    preset_families = {k: fields[f"{k}_family"] for k in ("vision", "text")}
    for k, v in args.overrides.items():  # tower dicts merge into the preset's, unless the tower family changes
        same_family = args.overrides.get(f"{k}_family", preset_families.get(k)) == preset_families.get(k)
        merge = isinstance(v, dict) and isinstance(fields.get(k), dict) and same_family
        fields[k] = {**fields[k], **v} if merge else v
    model = CLIP(registry.make_config("clip", fields))
    if tower is not None:
        model.text.load_state_dict(tower.state_dict())
    return model


def make_datasets(args, seed: int):
    """(train image groups, validation image groups, format info) of a captions run's `args` (fields data,
    val_data, out, shapes_train, image_root, max_val, val_fraction): the built-in shapes when no --data; a
    seeded split of --data when no --val-data. Shared by the CLIP, diffusion and autoencoder recipes."""
    data, val_data = args.data, args.val_data
    if data is None:
        data, val_data = default_shapes_data(Path(args.out), args.shapes_train)
    kw = {"image_root": args.image_root} if args.image_root else {}
    groups, info = load_groups(data, **kw)
    if val_data:
        return groups, load_groups(val_data, **kw)[0][:args.max_val], info
    return *split_groups(groups, args.val_fraction, seed, args.max_val), info


def pretrain_clip(args: CLIPPretrainArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume) a CLIP; returns the trainer summary plus data/parameter counts."""
    torch.manual_seed(cfg.seed)
    train_groups, val_groups, info = make_datasets(args, cfg.seed)
    tokenizer = make_tokenizer(args, [r.text for g in train_groups for r in g], resume)
    model = make_model(args, tokenizer)
    skipped = SkipCounter()
    train_set = SafeDataset(CaptionedImages(train_groups, transform_for(model, train=args.augment, seed=cfg.seed),
                                            seed=cfg.seed, cache=args.cache_images), skipped)
    val_set = SafeDataset(CaptionedImages(val_groups, transform_for(model), random_caption=False,
                                          cache=args.cache_images), skipped)
    task = ContrastiveTask(lambda texts: model.tokenize(tokenizer, texts))
    trainer = Trainer(model, task, train_set, val_set, cfg, args.out, tokenizer=tokenizer)
    summary = trainer.fit(resume=resume)
    summary.update(format=info.get("format"), train_images=len(train_groups), val_images=len(val_groups),
                   skipped_samples=skipped.count, skip_reasons=skipped.reasons[:5],
                   parameters=sum(p.numel() for p in model.parameters()),
                   trainable=sum(p.numel() for p in model.parameters() if p.requires_grad))
    return summary
