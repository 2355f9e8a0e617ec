"""Autoencoder (AutoencoderKL) training on images (any image-text format; the shapes set by default): the
latent space for `lingvis pretrain diffusion --vae RUN`."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.images import SafeDataset, SkipCounter
from ..models import registry
from ..tasks.autoencoder import AutoencoderTask
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from .clip import make_datasets
from .clip_data import CaptionedImages
from .diffusion import image_transform

DEFAULT_PRESET = "vae-shapes"


@dataclass
class VAEPretrainArgs:
    out: str
    data: str | None = None          # images with captions (COCO JSON, JSONL, CSV, tar); None = shapes
    val_data: str | None = None
    preset: str | None = None        # a vae preset
    image_size: int | None = None    # pixels (default: the preset's sample_size)
    kl_weight: float = 1e-4
    image_root: str | None = None
    val_fraction: float = 0.05
    max_val: int = 256
    shapes_train: int = 5000


def pretrain_vae(args: VAEPretrainArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    torch.manual_seed(cfg.seed)
    _, config = registry.preset_of(args.preset or DEFAULT_PRESET, "vae")
    size = args.image_size or config.sample_size
    if size % config.downscale:
        raise ValueError(f"image_size {size} is not a multiple of the autoencoder's factor {config.downscale}")
    config.sample_size = size
    model = registry.family("vae").model_cls(config)
    train_groups, val_groups, info = make_datasets(args, cfg.seed)
    skipped = SkipCounter()
    train_set = SafeDataset(CaptionedImages(train_groups, image_transform(size), seed=cfg.seed, cache=True), skipped)
    val_set = SafeDataset(CaptionedImages(val_groups, image_transform(size), random_caption=False, cache=True), skipped)
    summary = Trainer(model, AutoencoderTask(args.kl_weight), train_set, val_set, cfg, args.out).fit(resume=resume)
    summary.update(format=info.get("format"), train_images=len(train_groups), val_images=len(val_groups),
                   image_size=size, latent_shape=[config.latent_channels, size // config.downscale,
                                                  size // config.downscale],
                   parameters=sum(p.numel() for p in model.parameters()), skipped_samples=skipped.count)
    return summary
