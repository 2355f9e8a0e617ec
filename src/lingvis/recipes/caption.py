"""Captioning: image-text data -> BPE tokenizer on the captions -> image tower + cross-attending GPT
decoder -> Trainer; plus `caption_images` and held-out `evaluate_captions` (CIDEr-D, BLEU-4).

Without --data the built-in shapes scenes are rendered in memory (five reference captions per image).
--data takes any format of `lingvis.data.image_text` (COCO captions JSON, JSONL, CSV/TSV, webdataset,
class folder); captions of the same image are grouped as its references. Images that fail to load are
skipped and counted (`skipped_images` in the summary)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import api
from ..data.image_text import read_records
from ..data.images import ImageTransform, SafeDataset, SkipCounter
from ..data.shapes import ShapesDataset
from ..models import registry
from ..progress import progress
from ..tasks.caption import CaptionPairs, CaptionTask
from ..tasks.seq2seq import cut_at_eos
from ..tokenizers import Tokenizer, train_bpe
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from .translate import SPECIALS

DEFAULT_PRESET = "captioner-tiny"


@dataclass
class CaptionArgs:
    out: str
    data: str | None = None        # image-text dataset; None = built-in shapes
    val_data: str | None = None
    image_root: str | None = None  # where relative image paths of --data live
    preset: str | None = None
    model: str | None = None       # fine-tune this captioner (its tokenizer too)
    tokenizer: str | None = None
    vocab_size: int = 400
    label_smoothing: float = 0.1
    n_train: int = 4000            # built-in shapes scenes (5 captions each)
    n_val: int = 200
    val_fraction: float = 0.05
    seed: int = 0
    overrides: dict = field(default_factory=dict)  # CaptionerConfig fields


@dataclass
class ImageCaptions:
    """Images (loaded on demand) and their reference captions."""
    loaders: list
    captions: list[list[str]]

    def load(self, i: int):
        return self.loaders[i]()


def shapes_split(split: str, n: int, seed: int = 0, image_size: int = 64) -> ImageCaptions:
    """Built-in shapes scenes of a split (rendered on access) with their reference captions."""
    ds = ShapesDataset(split, n, seed=seed, image_size=image_size)
    return ImageCaptions([(lambda i=i: ds[i]["image"]) for i in range(len(ds))], ds.captions)


def user_split(path: str, image_root: str | None) -> ImageCaptions:
    """Group the records of an image-text dataset by image."""
    records, _ = read_records(path, **({"image_root": image_root} if image_root else {}))
    groups: dict[str, tuple] = {}
    for r in records:
        if r.text.strip():
            groups.setdefault(r.key, (r, []))[1].append(r.text.strip())
    if not groups:
        raise ValueError(f"{path}: no (image, caption) records")
    return ImageCaptions([g[0].load for g in groups.values()], [g[1] for g in groups.values()])


def split_off(data: ImageCaptions, fraction: float, seed: int) -> tuple[ImageCaptions, ImageCaptions]:
    n = len(data.captions)
    if n < 2:
        raise ValueError(f"need at least 2 images to split off validation, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    k = min(max(1, round(n * fraction)), n - 1)
    pick = lambda idx: ImageCaptions([data.loaders[i] for i in idx], [data.captions[i] for i in idx])  # noqa: E731
    return pick(sorted(order[k:])), pick(sorted(order[:k]))


def load_data(args: CaptionArgs) -> tuple[ImageCaptions, ImageCaptions]:
    if args.data is None:
        return shapes_split("train", args.n_train, args.seed), shapes_split("val", args.n_val, args.seed)
    data = user_split(args.data, args.image_root)
    if args.val_data:
        return data, user_split(args.val_data, args.image_root)
    return split_off(data, args.val_fraction, args.seed)


def image_transform(model) -> ImageTransform:
    c = model.image_config
    return ImageTransform(size=getattr(c, "resize_size", None) or c.image_size, crop=c.image_size,
                          mean=c.image_mean, std=c.image_std)


def make_model(args: CaptionArgs, tok: Tokenizer) -> torch.nn.Module:
    if args.model:
        return api.load_as(args.model, "captioner", "a captioner").train()
    fam, cfg = registry.preset_of(args.preset or DEFAULT_PRESET, "captioner", "a captioner", **args.overrides)
    cfg.decoder = {**cfg.decoder, "vocab_size": tok.vocab_size}
    cfg.bos_id, cfg.eos_id, cfg.pad_id = tok.bos_id, tok.eos_id, tok.pad_id
    return registry.family(fam).model_cls(cfg)


def make_tokenizer(args: CaptionArgs, train: ImageCaptions, resume: bool) -> Tokenizer:
    if resumable(args.out, resume):
        return api.load_tokenizer(args.out)
    if args.model:
        return api.load_tokenizer(args.model)
    if args.tokenizer:
        return Tokenizer.load(args.tokenizer)
    return train_bpe([c for caps in train.captions for c in caps], args.vocab_size, SPECIALS)


def train_captioner(args: CaptionArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume / fine-tune) a captioner; returns the trainer summary."""
    torch.manual_seed(cfg.seed)
    train, val = load_data(args)
    tok = make_tokenizer(args, train, resume)
    model = make_model(args, tok)
    ctx, tf = model.context_length, image_transform(model)
    skipped = SkipCounter()
    train_set = SafeDataset(CaptionPairs(train.load, train.captions, tok, tf, ctx), skipped)
    val_set = SafeDataset(CaptionPairs(val.load, val.captions, tok, tf, ctx, all_captions=False), skipped)
    longest = max(len(ids) for ids in train_set.dataset.ids.values())
    task = CaptionTask(tok, model.config.bos_id, model.config.eos_id, model.config.pad_id, args.label_smoothing,
                       max_new_tokens=min(ctx - 1, longest + 2))
    summary = Trainer(model, task, train_set, val_set, cfg, args.out, tokenizer=tok,
                      meta={"task": "caption"}).fit(resume)
    summary.update(train_pairs=len(train_set), val_images=len(val_set), skipped_images=skipped.count,
                   parameters=sum(p.numel() for p in model.parameters()))
    return summary


@torch.inference_mode()
def caption_images(model, tok: Tokenizer, images: list, num_beams: int = 3, max_new_tokens: int = 32,
                   batch_size: int = 32, **decode) -> list[str]:
    """Captions for PIL images (beam search by default; `num_beams=1` + sampling keywords otherwise)."""
    tf, device = image_transform(model), next(model.parameters()).device
    out: list[str] = []
    for i in progress(range(0, len(images), batch_size), desc="caption", unit="batch", delay=2, leave=False):
        pixels = torch.stack([tf(im) for im in images[i:i + batch_size]]).to(device)
        n = min(max_new_tokens, model.context_length - 1)
        ids = model.generate(pixels, num_beams=num_beams, max_new_tokens=n, **decode)
        out += [tok.decode(row[1:]).strip() for row in cut_at_eos(ids, model.config.eos_id)]
    return out


def evaluate_captions(model, tok: Tokenizer, data: ImageCaptions, num_beams: int = 3, **kw) -> dict:
    """CIDEr-D and BLEU-4 of `model`'s captions for `data`, with a few examples."""
    from ..eval.captioning import caption_scores

    hyps = caption_images(model, tok, [data.load(i) for i in range(len(data.captions))], num_beams, **kw)
    scores = caption_scores(dict(enumerate(data.captions)), dict(enumerate(hyps)))
    examples = [{"hyp": h, "refs": r[:2]} for h, r in zip(hyps[:3], data.captions[:3])]
    return {"cider": scores["CIDEr-D"], "bleu4": scores["BLEU-4"], "n": len(hyps), "examples": examples}
