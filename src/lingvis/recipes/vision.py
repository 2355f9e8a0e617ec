"""Image classification fine-tuning from a class folder (root/<class>/<image>), starting from a preset or a
trained ViT / CNN / CLIP image tower / image classifier checkpoint."""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

from .. import api
from ..data.image_text_readers import read_folder
from ..data.images import SafeDataset, SkipCounter
from ..models import registry
from ..models.image_classifier import ImageClassifier, with_backbone
from ..tasks.image_classify import ImageClassifyTask
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from .clip_data import transform_for

DEFAULT_PRESET = "vit-tiny-classifier"


@dataclass
class ImageClassifyArgs:
    out: str
    data: str                        # class folder
    val_data: str | None = None      # class folder with the same class names
    preset: str | None = None        # image_classifier preset, or a vit/cnn preset used as the backbone
    model: str | None = None         # checkpoint: image_classifier, vit, cnn or clip (its image tower)
    augment: bool = True
    val_fraction: float = 0.1


class LabelledImages(Dataset):
    """{"image": transform(image), "label": class index} per record."""

    def __init__(self, records, transform):
        self.records, self.transform = records, transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        return {"image": self.transform(r.load()), "label": r.label}


def make_model(args: ImageClassifyArgs, labels: list[str]) -> ImageClassifier:
    if args.model:
        base = api.load(args.model)
        if base.family == "image_classifier":
            if base.config.labels == labels:
                return base.train()
            return with_backbone(base.backbone, labels, base.config.dropout).train()
        if base.family == "clip":
            return with_backbone(base.vision, labels).train()
        if base.family in ("vit", "cnn"):
            return with_backbone(base, labels).train()
        raise ValueError(f"{args.model} holds a {base.family} model; expected a ViT, CNN, CLIP or image classifier")
    fam, cfg = registry.preset_config(args.preset or DEFAULT_PRESET)
    if fam in ("vit", "cnn"):
        return ImageClassifier(registry.make_config("image_classifier", {
            "backbone_family": fam, "backbone": dataclasses.asdict(cfg), "labels": labels}))
    if fam != "image_classifier":
        raise ValueError(f"preset {args.preset!r} is a {fam} model; expected an image classifier, vit or cnn preset")
    return ImageClassifier(dataclasses.replace(cfg, labels=labels))


def split_records(args: ImageClassifyArgs, seed: int):
    records, classes = read_folder(args.data)
    if args.val_data:
        val, val_classes = read_folder(args.val_data)
        if val_classes != classes:
            raise ValueError(f"{args.val_data} has classes {val_classes}, but {args.data} has {classes}")
        return records, val, classes
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n_val = max(1, int(len(records) * args.val_fraction))
    return [records[i] for i in order[n_val:]], [records[i] for i in order[:n_val]], classes


def finetune_image_classifier(args: ImageClassifyArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    torch.manual_seed(cfg.seed)
    train, val, classes = split_records(args, cfg.seed)
    model: nn.Module = make_model(args, classes)
    if resumable(args.out, resume):
        model = ImageClassifier(api.load(args.out).config)
    skipped = SkipCounter()
    train_set = SafeDataset(LabelledImages(train, transform_for(model, train=args.augment, seed=cfg.seed)), skipped)
    val_set = SafeDataset(LabelledImages(val, transform_for(model)), skipped)
    trainer = Trainer(model, ImageClassifyTask(), train_set, val_set, cfg, args.out)
    summary = trainer.fit(resume=resume)
    summary.update(classes=classes, train_images=len(train), val_images=len(val), skipped_samples=skipped.count,
                   skip_reasons=skipped.reasons[:5], parameters=sum(p.numel() for p in model.parameters()))
    return summary
