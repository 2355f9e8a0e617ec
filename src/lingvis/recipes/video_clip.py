"""Video-text contrastive training (CLIP4Clip): captioned videos (MSR-VTT-style JSON or WebVid-style CSV) ->
tokenizer -> VideoCLIP (from a preset, a CLIP run / HF CLIP folder, or a video CLIP run) -> Trainer."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .. import api
from ..data.images import SafeDataset, SkipCounter
from ..models import registry
from ..models.video_clip import VideoCLIP
from ..tasks.video_contrastive import VideoContrastiveTask
from ..tokenizers import Tokenizer
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from ..video.dataset import VIDEO_ERRORS, VideoClips
from ..video.hard_negatives import HardNegativeGroups, group_keys
from ..video.readers import read_captioned_videos
from .clip_data import train_word_tokenizer
from .video_data import sampling_for, split_videos, transform_for_video

DEFAULT_PRESET = "video-clip-tiny"
TEMPORAL_FIELDS = ("temporal", "temporal_depth", "temporal_heads", "num_frames", "sampling", "sample_fps")


@dataclass
class VideoCLIPArgs:
    out: str
    data: str                         # MSR-VTT-style captions JSON or WebVid-style CSV
    val_data: str | None = None       # held-out captioned videos; default a split of `data` by video
    video_root: str | None = None
    preset: str | None = None         # a video_clip preset (a fresh CLIP inside)
    clip: str | None = None           # start from this CLIP: a lingvis run/folder or an HF CLIP folder
    model: str | None = None          # continue from this video CLIP run (and its tokenizer)
    tokenizer: str = "word"           # word (trained on the captions) | tokenizer folder/file (preset only)
    temporal: str | None = None       # transformer | mean
    temporal_depth: int | None = None
    temporal_heads: int | None = None
    num_frames: int | None = None
    sampling: str | None = None
    sample_fps: float | None = None
    augment: bool = False
    val_fraction: float = 0.1
    max_val: int = 1000
    short: str = "error"
    cache_frames: bool = False       # keep decoded frames in memory (small sets of short clips)
    hard_negatives: int | None = None  # videos per group sharing `group_field` (1: off; None: auto, see below)
    group_field: str = "subject"     # the videos' field that groups hard negatives (synthetic data: "red circle")


def hard_negative_size(args: VideoCLIPArgs, records, cfg: TrainConfig) -> int:
    """Group size: `args.hard_negatives`, or by default (None), when the training videos carry `group_field`,
    the largest size <= batch_size // 8 (at least 2, at most 8) that divides the (micro) batch, so a step holds
    at least 8 groups; else 1 (random batches)."""
    if args.hard_negatives is not None:
        if args.hard_negatives < 1:
            raise ValueError(f"hard_negatives must be >= 1, got {args.hard_negatives}")
        return args.hard_negatives
    if not any(args.group_field in r.meta for r in records):
        return 1
    top = max(2, min(8, cfg.batch_size // 8))
    return next((k for k in range(top, 1, -1) if cfg.batch_size % (k * cfg.grad_accum) == 0), 1)


def _overrides(args: VideoCLIPArgs) -> dict:
    return {k: getattr(args, k) for k in TEMPORAL_FIELDS if getattr(args, k) is not None}


def make_tokenizer(args: VideoCLIPArgs, texts: list[str], resume: bool) -> Tokenizer:
    if resumable(args.out, resume):
        return api.load_tokenizer(args.out)
    for source in (args.model, args.clip):
        if source:
            return api.load_tokenizer(source)
    if args.tokenizer == "word":
        return train_word_tokenizer(texts)
    return Tokenizer.load(args.tokenizer)


def make_model(args: VideoCLIPArgs, tokenizer: Tokenizer) -> VideoCLIP:
    if args.model and args.clip:
        raise ValueError("pass either --model (a video CLIP run to continue) or --clip (a CLIP to start from)")
    if args.model:
        model = api.load_as(args.model, "video_clip", "video_clip (use --clip for a CLIP)")
        arch = sorted(k for k in _overrides(args) if k.startswith("temporal"))
        if arch:
            raise ValueError(f"--model continues {args.model} as it is; {arch} change the temporal head: start from "
                             "its CLIP instead (--clip)")
        if _overrides(args):  # sampling only: the weights stay
            state = model.state_dict()
            model = VideoCLIP(dataclasses.replace(model.config, **_overrides(args)))
            model.load_state_dict(state)
        return model.train()
    _, base = registry.preset_of(args.preset or DEFAULT_PRESET, "video_clip")
    fields = {k: v for k, v in dataclasses.asdict(base).items() if k != "clip"}
    fields.update(_overrides(args))
    if args.clip:
        clip = api.load(args.clip)
        if getattr(clip, "family", None) == "clip":  # an RGB CLIP sees frames; a 6-channel one frames + differences
            fields["frame_input"] = "rgb+diff" if clip.vision.config.channels == 6 else "rgb"
        return VideoCLIP.from_clip(clip, **fields).train()
    clip_fields = dict(base.clip)
    clip_fields["text"] = {**clip_fields.get("text", {}), "vocab_size": tokenizer.vocab_size}
    clip_fields.update(eos_token_id=tokenizer.eos_id, bos_token_id=tokenizer.bos_id, pad_token_id=tokenizer.pad_id)
    return VideoCLIP(registry.make_config("video_clip", {**fields, "clip": clip_fields}))


def make_datasets(args: VideoCLIPArgs, seed: int):
    records = read_captioned_videos(args.data, args.video_root)
    if args.val_data:
        return records, read_captioned_videos(args.val_data, args.video_root)[:args.max_val]
    return split_videos(records, args.val_fraction, seed, args.max_val)


def pretrain_video_clip(args: VideoCLIPArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume) a video CLIP; returns the trainer summary plus data/parameter counts."""
    torch.manual_seed(cfg.seed)
    train, val = make_datasets(args, cfg.seed)
    tokenizer = make_tokenizer(args, [c for r in train for c in r.captions], resume)
    if resumable(args.out, resume):
        model = VideoCLIP(api.load(args.out).config)
    else:
        model = make_model(args, tokenizer)
    skipped = SkipCounter()
    train_set = SafeDataset(VideoClips(train, sampling_for(model, short=args.short),
                                       transform_for_video(model, train=args.augment, seed=cfg.seed), train=True,
                                       seed=cfg.seed, cache_frames=args.cache_frames), skipped, errors=VIDEO_ERRORS)
    k = hard_negative_size(args, train, cfg)
    if k > 1:  # items are groups of k videos: batch_size // k of them make a step of batch_size videos
        if cfg.batch_size % (k * cfg.grad_accum):
            raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of hard_negatives {k} x grad_accum "
                             f"{cfg.grad_accum}")
        train_set = HardNegativeGroups(train_set, group_keys(train, args.group_field), k,
                                       labels=[r.label for r in train], seed=cfg.seed)
        cfg = dataclasses.replace(cfg, batch_size=cfg.batch_size // k)
    val_set = SafeDataset(VideoClips(val, sampling_for(model, short=args.short), transform_for_video(model),
                                     cache_frames=args.cache_frames), skipped, errors=VIDEO_ERRORS)
    task = VideoContrastiveTask(lambda texts: model.tokenize(tokenizer, texts))
    trainer = Trainer(model, task, train_set, val_set, cfg, args.out, tokenizer=tokenizer)
    summary = trainer.fit(resume=resume)
    summary.update(hard_negatives=k, train_videos=len(train), val_videos=len(val), skipped_videos=skipped.count,
                   skip_reasons=skipped.reasons[:5], parameters=sum(p.numel() for p in model.parameters()))
    return summary
