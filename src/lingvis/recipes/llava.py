"""The LLaVA recipe on the one trainer.

Stage 1 (`pretrain_llava`): a vision tower (a lingvis ViT/CLIP run or an HF CLIP folder) and a causal LM (a
lingvis GPT run or an HF Llama-family/GPT-2 folder) are joined by a new projector; both stay frozen and the
projector learns to caption: image-caption pairs (any `lingvis.data.image_text` format, e.g. COCO captions)
become one-turn conversations "<image>\\n<describe request>" -> caption.
Stage 2 (`finetune_llava`): the stage-1 model is tuned on LLaVA conversation JSON (multi-turn, text-only rows
mixed in) with the loss on assistant tokens only; projector + LM train (or projector + LoRA adapters on the
LM with `lora_rank`); the tower stays frozen unless `train_vision` (LLaVA-NeXT style: the tower learns what the
answers need, e.g. where an object is and which shape it has, that its caption-contrastive training left out).
Without data both stages use the built-in shapes scenes (captions; the shapes instruction set).
Conversations are rendered with the tokenizer's chat template (lingvis's default template when it has none).
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import api
from ..data.image_text import read_records
from ..data.images import SafeDataset, SkipCounter
from ..data.llava_inputs import IMAGE_TOKEN, image_transform
from ..data.llava_json import Conversation, read_llava_json
from ..data.shapes import make_split_scenes, render_scene
from ..data.shapes_instruct import DESCRIBE, instruction_records
from ..data.shapes_language import captions as shape_captions
from ..models.gpt import GPT
from ..models.llava import Llava, LlavaConfig
from ..models.vit import ViT
from ..tasks.llava import LlavaConversations, LlavaTask
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from .split_words import parse_pairs, split_word_pairs

SHAPES_SIZE = 64  # the shapes images are rendered at this size (as `lingvis data shapes` writes them)


@dataclass
class LlavaArgs:
    out: str
    data: str | None = None          # stage 1: image-caption data; stage 2: LLaVA JSON; None = built-in shapes
    val_data: str | None = None
    image_root: str | None = None    # folder of the relative image paths in `data` (default: beside the file)
    vision: str | None = None        # stage 1: vision tower folder (lingvis ViT/CLIP run, HF CLIP)
    llm: str | None = None           # stage 1: causal LM folder (lingvis GPT run, HF Llama-family or GPT-2)
    model: str | None = None         # stage 2: the stage-1 run (or any llava folder)
    projector: str = "mlp2x_gelu"
    vision_feature_layer: int | list[int] = -2
    vision_feature_select_strategy: str = "default"
    spatial_merge: int = 1           # stage 1: m x m neighbouring patches -> one image token (lingvis-only)
    image_position: str = "none"     # stage 1: "rowcol" learned row/column embeddings, "onehot" fixed one-hot
                                     # row/column projector inputs (lingvis-only)
    n_train: int = 3000              # built-in shapes scenes
    n_val: int = 100
    val_fraction: float = 0.02
    seed: int = 0
    train_vision: bool = False       # stage 2: the vision tower trains too (else frozen)
    # split the nearly equal embeddings of these word pairs before the stage trains ("left/right,above/below":
    # recipes.split_words; in stage 1 the LM is frozen, so they stay split there); a resumed run keeps its own
    split_words: str | None = None


# ----- data ---------------------------------------------------------------------------------------------
def _rendered(scene):
    return lambda: render_scene(scene, SHAPES_SIZE)


def shapes_captions(split: str, n: int, seed: int = 0) -> list[Conversation]:
    """Stage-1 conversations from built-in scenes: every caption of every scene."""
    rng = random.Random(f"lingvis-llava-stage1/{seed}/{split}")
    text_rng = random.Random(f"lingvis-shapes/{seed}/{split}/text")
    out = []
    for k, scene in enumerate(make_split_scenes(split, n, seed)):
        image = _rendered(scene)
        for cap in shape_captions(scene, text_rng):
            out.append(caption_conversation(f"{split}-{k}", image, cap, rng))
    return out


def shapes_instructions(split: str, n: int, seed: int = 0) -> list[Conversation]:
    """Stage-2 conversations from built-in scenes: the shapes instruction set (multi-turn, some text-only)."""
    scenes = make_split_scenes(split, n, seed)
    loaders = {str(k): _rendered(s) for k, s in enumerate(scenes)}
    out = []
    for rec in instruction_records(scenes, list(loaders), seed, split=split):
        messages = [{"role": "user" if t["from"] == "human" else "assistant", "content": t["value"]}
                    for t in rec["conversations"]]
        out.append(Conversation(rec["id"], [loaders[rec["image"]]] if "image" in rec else [], messages))
    return out


def caption_conversation(key: str, image, caption: str, rng: random.Random) -> Conversation:
    return Conversation(key, [image], [{"role": "user", "content": f"{IMAGE_TOKEN}\n{rng.choice(DESCRIBE)}"},
                                       {"role": "assistant", "content": caption}])


def caption_file(path: str, image_root: str | None, seed: int) -> list[Conversation]:
    records, _ = read_records(path, **({"image_root": image_root} if image_root else {}))
    rng = random.Random(f"lingvis-llava-stage1/{seed}")
    out = [caption_conversation(r.key, r.load, r.text.strip(), rng) for r in records if r.text.strip()]
    if not out:
        raise ValueError(f"{path}: no (image, caption) records")
    return out


def split_off(convs: list[Conversation], fraction: float, seed: int) -> tuple[list, list]:
    """Hold out whole images: every conversation about a held-out image (or id) goes to validation."""
    key = lambda c: str(c.images[0]) if c.images and isinstance(c.images[0], Path) else c.id  # noqa: E731
    keys = sorted({key(c) for c in convs})
    if len(keys) < 2:
        raise ValueError(f"need at least 2 images to split off validation, got {len(keys)}")
    held = set(random.Random(seed).sample(keys, min(max(1, round(len(keys) * fraction)), len(keys) - 1)))
    return [c for c in convs if key(c) not in held], [c for c in convs if key(c) in held]


def stage_data(args: LlavaArgs, stage: int) -> tuple[list[Conversation], list[Conversation]]:
    if args.data is None:
        make = shapes_captions if stage == 1 else shapes_instructions
        return make("train", args.n_train, args.seed), make("val", args.n_val, args.seed)
    read = (lambda p: caption_file(p, args.image_root, args.seed)) if stage == 1 else \
        (lambda p: read_llava_json(p, args.image_root))
    train = read(args.data)
    if args.val_data:
        return train, read(args.val_data)
    return split_off(train, args.val_fraction, args.seed)


# ----- models -------------------------------------------------------------------------------------------
def vision_tower(path: str) -> ViT:
    """The ViT of a lingvis ViT/CLIP/LLaVA/captioner folder or an HF CLIP / CLIPVision folder (a captioner's
    image encoder is a tower trained generatively, on captions, as in CapPa)."""
    m = api.load(path)
    tower = getattr(m, "vision", None) or getattr(m, "encoder", None) or m
    if not isinstance(tower, ViT):
        raise ValueError(f"{path} holds a {getattr(m, 'family', type(m).__name__)} model whose image tower is not a "
                         "ViT; LLaVA reads ViT (CLIP vision tower or ViT captioner encoder) patch features")
    return tower


def language_model(path: str) -> GPT:
    m = api.load(path)
    if not isinstance(m, GPT) or m.config.cross_attention:
        raise ValueError(f"{path} holds a {getattr(m, 'family', type(m).__name__)} model, not a causal LM (GPT, "
                         "Llama-family)")
    return m


def with_image_token(tok) -> int:
    """The id of `<image>` in `tok`, added as a special token when missing."""
    import tokenizers as hf_tok

    if tok.token_to_id(IMAGE_TOKEN) is None:
        tok.backend.add_special_tokens([hf_tok.AddedToken(IMAGE_TOKEN, special=True, normalized=False)])
    return tok.token_to_id(IMAGE_TOKEN)


def grow_vocab(lm: GPT, size: int) -> GPT:
    """A copy of `lm` with `size` token rows (new rows: the mean embedding)."""
    if size <= lm.config.vocab_size:
        return lm
    cfg = dataclasses.replace(lm.config, vocab_size=size)
    grown = GPT(cfg)
    state = lm.state_dict()
    with torch.no_grad():
        for key in ("wte.weight", "lm_head.weight"):
            if key in state:
                old = state[key]
                state[key] = torch.cat([old, old.mean(0, keepdim=True).expand(size - old.shape[0], -1)])
    grown.load_state_dict(state)
    return grown


def build_stage1(args: LlavaArgs, tok) -> Llava:
    tower, lm = vision_tower(args.vision), language_model(args.llm)
    image_id = with_image_token(tok)
    lm = grow_vocab(lm, tok.vocab_size)
    cfg = LlavaConfig(vision=dataclasses.asdict(tower.config), text=dataclasses.asdict(lm.config),
                      projector=args.projector, vision_feature_layer=args.vision_feature_layer,
                      vision_feature_select_strategy=args.vision_feature_select_strategy, image_token_id=image_id,
                      spatial_merge=args.spatial_merge, image_position=args.image_position,
                      freeze_vision=True, freeze_llm=True)
    model = Llava(cfg)
    model.vision.load_state_dict(tower.state_dict())
    model.llm.load_state_dict(lm.state_dict())
    return model


def _summary(summary: dict, train_set, val_set, model: nn.Module, skipped: SkipCounter) -> dict:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    summary.update(train_conversations=len(train_set), val_conversations=len(val_set),
                   dropped_too_long=train_set.dataset.dropped, skipped_images=skipped.count,
                   parameters=sum(p.numel() for p in model.parameters()), trainable_parameters=trainable)
    return summary


def _fit(model: Llava, tok, train: list, val: list, cfg: TrainConfig, out: str, stage: str, resume: bool) -> dict:
    tf, skipped = image_transform(model), SkipCounter()
    train_set = SafeDataset(LlavaConversations(train, tok, model, tf), skipped)
    val_set = SafeDataset(LlavaConversations(val, tok, model, tf), skipped)
    pad = tok.pad_id if tok.pad_id is not None else (tok.eos_id or 0)
    trainer = Trainer(model, LlavaTask(pad), train_set, val_set, cfg, out, tokenizer=tok, meta={"task": stage})
    return _summary(trainer.fit(resume), train_set, val_set, trainer.model, skipped)


def load_llava(path: str) -> Llava:
    model = api.load(path)
    if not isinstance(model, Llava):
        raise ValueError(f"{path} holds a {getattr(model, 'family', type(model).__name__)} model, not llava")
    return model


def pretrain_llava(args: LlavaArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Stage 1: projector only, on captions (a new model from --vision + --llm, or continue --model)."""
    torch.manual_seed(cfg.seed)
    if args.model:
        model = load_llava(args.model).set_stage(freeze_vision=True, freeze_llm=True)
        tok = api.load_tokenizer(args.model)
    elif args.vision and args.llm:
        tok = api.load_tokenizer(args.llm)
        model = build_stage1(args, tok)
    else:
        raise ValueError("stage 1 needs --vision (a ViT/CLIP folder) and --llm (a causal LM folder), or --model")
    if resumable(args.out, resume):
        tok = api.load_tokenizer(args.out)
    split = _split_words(args, model, tok, cfg, resume)
    train, val = stage_data(args, 1)
    summary = _fit(model.train(), tok, train, val, cfg, args.out, "llava-pretrain", resume)
    return summary if split is None else {**summary, "split_words": split}


def _split_words(args: LlavaArgs, model: Llava, tok, cfg: TrainConfig, resume: bool) -> list[dict] | None:
    """`args.split_words` applied to a new (not resumed) run's model before it trains; the per-pair log."""
    pairs = parse_pairs(args.split_words)
    if not pairs or resumable(args.out, resume):
        return None
    split = split_word_pairs(model, tok, pairs, seed=cfg.seed)
    print(f"split_words: {split}", flush=True)
    return split


def finetune_llava(args: LlavaArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Stage 2: projector + LM (or projector + LoRA adapters), and the tower with `train_vision`, on
    conversations."""
    torch.manual_seed(cfg.seed)
    if not args.model:
        raise ValueError("stage 2 needs --model (the stage-1 run or a llava folder)")
    model = load_llava(args.model).set_stage(freeze_vision=not args.train_vision, freeze_llm=False).train()
    tok = api.load_tokenizer(args.out if resumable(args.out, resume) else args.model)
    split = _split_words(args, model, tok, cfg, resume)
    if cfg.lora_rank:
        keep = cfg.lora_train.split(",") + ["projector"] + (["vision."] if args.train_vision else [])
        cfg = dataclasses.replace(cfg, lora_train=",".join(dict.fromkeys(t for t in keep if t)))
    train, val = stage_data(args, 2)
    summary = _fit(model, tok, train, val, cfg, args.out, "llava-finetune", resume)
    return summary if split is None else {**summary, "split_words": split}
