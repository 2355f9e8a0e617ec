"""Video classification fine-tuning from a class folder or a `path,label` CSV, starting from a preset or a
checkpoint: a video classifier (same or new labels), a video backbone, a video CLIP or CLIP (its image
tower becomes the frame encoder), or a ViT/CNN (the frame encoder)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from .. import api
from ..data.images import SafeDataset, SkipCounter
from ..models import registry
from ..models.video_classifier import VideoClassifier, is_video_backbone
from ..tasks.video_classify import VideoClassifyTask
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from ..video.dataset import VIDEO_ERRORS, VideoClips
from ..video.readers import read_labelled_videos
from .video_data import sampling_for, split_videos, transform_for_video

DEFAULT_PRESET = "video-classifier-tiny"


@dataclass
class VideoClassifyArgs:
    out: str
    data: str                        # class folder or path,label CSV
    val_data: str | None = None      # the same, with the same class names
    video_root: str | None = None    # folder that relative CSV paths are under
    preset: str | None = None        # video_classifier, video_frames, vit or cnn preset
    model: str | None = None         # checkpoint (see the module docstring)
    num_frames: int | None = None    # sampling overrides (default: the preset's / checkpoint's)
    sampling: str | None = None      # segments | stride
    sample_fps: float | None = None
    temporal: str | None = None      # transformer | mean (the video_frames backbone's temporal head)
    augment: bool = False            # one random resized crop per clip (no flips: they swap left and right)
    val_fraction: float = 0.1
    eval_clips: int = 1              # clips per validation video (scores averaged)
    short: str = "error"             # too-short videos: error (skipped and counted) | repeat (last frame)
    cache_frames: bool = False       # keep decoded frames in memory (small sets of short clips)


def _frames_backbone(frame_encoder: nn.Module) -> dict:
    return {"frame_family": frame_encoder.family, "frame": dataclasses.asdict(frame_encoder.config)}


def _new(backbone_family: str, backbone: dict, labels: list[str], args: VideoClassifyArgs,
         base: dict | None = None) -> VideoClassifier:
    fields = {**(base or {}), "backbone_family": backbone_family, "backbone": dict(backbone), "labels": labels}
    if args.temporal is not None:
        if backbone_family != "video_frames":
            raise ValueError(f"--temporal applies to the video_frames backbone, not {backbone_family}")
        fields["backbone"]["temporal"] = args.temporal
    for name in ("num_frames", "sampling", "sample_fps"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    if "frames" in backbone and args.num_frames is None:
        fields["num_frames"] = backbone["frames"]  # a space-time Transformer takes clips of exactly its length
    return VideoClassifier(registry.make_config("video_classifier", fields))


def make_model(args: VideoClassifyArgs, labels: list[str]) -> VideoClassifier:
    if args.model:
        base = api.load(args.model)
        fam = base.family
        if fam == "video_classifier":
            keep = {k: v for k, v in dataclasses.asdict(base.config).items() if k not in ("backbone", "labels")}
            model = _new(base.config.backbone_family, base.config.backbone, labels, args, keep)
            if labels == base.config.labels and args.temporal is None:
                model.load_state_dict(base.state_dict())  # continue training, head included
            else:
                model.backbone.load_state_dict(base.backbone.state_dict())  # new labels: a fresh head
            return model.train()
        if is_video_backbone(type(base)):
            backbone = dataclasses.asdict(base.config)
            if backbone.get("labels") is not None:
                backbone["labels"] = None  # e.g. VideoMAEForVideoClassification: its head is dropped
            model = _new(fam, backbone, labels, args)
            state = {k: v for k, v in base.state_dict().items() if not k.startswith("head.")}
            model.backbone.load_state_dict(state)
            return model.train()
        frame = {"video_clip": lambda m: m.clip.vision, "clip": lambda m: m.vision}.get(fam, lambda m: m)(base)
        if frame.family not in ("vit", "cnn"):
            raise ValueError(f"{args.model} holds a {fam} model; expected a video classifier, video backbone, "
                             "video CLIP, CLIP, ViT or CNN")
        if frame.config.channels != 3:
            raise ValueError(f"{args.model}: its frame encoder takes {frame.config.channels} channels (a video CLIP "
                             "with frame_input 'rgb+diff'); a video classifier's frame encoder takes RGB frames")
        model = _new("video_frames", _frames_backbone(frame), labels, args)
        model.backbone.frame_encoder.load_state_dict(frame.state_dict())
        return model.train()
    fam, cfg = registry.preset_config(args.preset or DEFAULT_PRESET)
    if fam == "video_classifier":
        return _new(cfg.backbone_family, cfg.backbone, labels, args,
                    {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("backbone", "labels")})
    if fam in ("vit", "cnn"):
        return _new("video_frames", {"frame_family": fam, "frame": dataclasses.asdict(cfg)}, labels, args)
    if is_video_backbone(registry.family(fam).model_cls):
        return _new(fam, {**dataclasses.asdict(cfg), **({"labels": None} if hasattr(cfg, "labels") else {})},
                    labels, args)
    raise ValueError(f"preset {args.preset!r} is a {fam} model; expected a video classifier, video backbone, "
                     "vit or cnn preset")


def split_records(args: VideoClassifyArgs, seed: int):
    records, classes = read_labelled_videos(args.data, args.video_root)
    if args.val_data:
        val, val_classes = read_labelled_videos(args.val_data, args.video_root)
        if not set(val_classes) <= set(classes):
            raise ValueError(f"{args.val_data} has classes {sorted(set(val_classes) - set(classes))} that "
                             f"{args.data} lacks")
        return records, val, classes
    train, val = split_videos(records, args.val_fraction, seed)
    return train, val, classes


def finetune_video_classifier(args: VideoClassifyArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume) a video classifier; returns the trainer summary plus data counts."""
    torch.manual_seed(cfg.seed)
    train, val, classes = split_records(args, cfg.seed)
    if resumable(args.out, resume):
        model = VideoClassifier(api.load(args.out).config)
    else:
        model = make_model(args, classes)
    labels = model.config.labels
    skipped = SkipCounter()
    train_set = SafeDataset(VideoClips(train, sampling_for(model, short=args.short),
                                       transform_for_video(model, train=args.augment, seed=cfg.seed), labels,
                                       train=True, seed=cfg.seed, cache_frames=args.cache_frames),
                            skipped, errors=VIDEO_ERRORS)
    val_set = SafeDataset(VideoClips(val, sampling_for(model, args.eval_clips, args.short), transform_for_video(model),
                                     labels, cache_frames=args.cache_frames), skipped, errors=VIDEO_ERRORS)
    trainer = Trainer(model, VideoClassifyTask(), train_set, val_set, cfg, args.out)
    summary = trainer.fit(resume=resume)
    summary.update(classes=classes, train_videos=len(train), val_videos=len(val), skipped_videos=skipped.count,
                   skip_reasons=skipped.reasons[:5], parameters=sum(p.numel() for p in model.parameters()))
    return summary
