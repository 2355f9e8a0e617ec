"""Text-to-image diffusion pretraining: captioned images (COCO captions JSON or any image-text format; the
synthetic shapes set by default) -> tokenizer -> TextToImage (pixel space, or latent space over a frozen
autoencoder) -> the Trainer with the diffusion task."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from .. import api
from ..data.images import ImageTransform, SafeDataset, SkipCounter
from ..data.shape_twins import ShapeTwins
from ..diffusion.sampling import prompt_tokens
from ..models import registry
from ..models.text_to_image import TextToImage
from ..tasks.diffusion import DiffusionTask
from ..tasks.repa import load_repa_encoder
from ..tasks.shape_seg import load_shape_segmenter
from ..tokenizers import Tokenizer
from ..train.checkpoint import resumable
from ..train.config import TrainConfig
from ..train.trainer import Trainer
from .clip import make_datasets
from .clip_data import CaptionedImages, train_word_tokenizer

DEFAULT_PRESET = "t2i-shapes-dit-conv-s"  # the shapes recipe's denoiser (docs/text_to_image.md, learning runs)
SHAPES_LR = 2e-3  # the shapes recipe's Adam learning rate (with DEFAULT_PRESET)
# the training choices that go with DEFAULT_PRESET (shapes_recipe, and `lingvis pretrain diffusion` without --preset)
SHAPES_RECIPE = {"objective": "flow", "snr_gamma": None, "timesteps": "logit_normal"}
OBJECTIVES = {
    "epsilon": {"_class_name": "DDIMScheduler", "beta_schedule": "squaredcos_cap_v2", "prediction_type": "epsilon",
                "clip_sample": False, "timestep_spacing": "trailing"},
    "v_prediction": {"_class_name": "DDIMScheduler", "beta_schedule": "squaredcos_cap_v2",
                     "prediction_type": "v_prediction", "clip_sample": False, "timestep_spacing": "trailing"},
    "flow": {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 1.0},
}


@dataclass
class DiffusionPretrainArgs:
    out: str
    data: str | None = None            # captioned images (COCO captions JSON, JSONL, CSV, tar); None = shapes
    val_data: str | None = None
    preset: str | None = None          # a text_to_image preset
    model: str | None = None           # continue from a text_to_image checkpoint or diffusers pipeline folder
    text_encoder: str | None = None    # lingvis CLIP run, HF CLIP folder or CLIP text-encoder folder (frozen)
    unlock_text: bool = False          # fine-tune the --text-encoder too
    vae: str | None = None             # an AutoencoderKL (lingvis run or diffusers vae/ folder): latent space
    objective: str | None = None       # epsilon | v_prediction | flow (default: the preset's)
    text_dropout: float = 0.1          # captions dropped for classifier-free guidance
    snr_gamma: float | None = None     # min-SNR-gamma loss weighting (noise-prediction objectives; e.g. 5)
    timesteps: str = "uniform"         # training noise levels: uniform | logit_normal
    timestep_mean: float | tuple[float, ...] = 0.0  # logit_normal: mean of the normal (< 0: more training at low
    #                                   noise); a tuple: an equal-weight mixture of logit-normals with these means
    lowres_weight: float = 0.0         # + this weight x the MSE at 1/2/4/8 px average-pooled (multi-scale loss)
    lowres_x0: bool = False            # that pooled MSE in x0 units (x sigma^2: weight on the high noise levels)
    object_weight: float = 0.0         # pixels that are not background white weigh 1 + this in the loss (pixel space)
    edge_weight: float = 0.0           # + this weight x the squared error of the neighbour differences (edge loss)
    repa_weight: float = 0.0           # > 0: + this weight x REPA (tasks/repa.py), aligned to repa_encoder's features
    repa_depth: int = 2                # the denoiser block whose output is aligned (counted from 1)
    repa_encoder: str | None = None    # a lingvis CLIP run whose (frozen) image tower gives the REPA targets
    repa_center: bool = False          # REPA targets minus their batch mean per channel
    repa_layer: int | None = None      # a ViT encoder's hidden state after this block (e.g. -2) as the REPA target
    shape_weight: float = 0.0          # > 0: + this weight x the shape segmenter's loss on the x0 estimate (shape_seg)
    shape_segmenter: str | None = None  # a folder of tasks/shape_seg.py's ShapeSegmenter (benchmarks.t2i_shape_seg)
    shape_max_sigma: float = 1.0       # the shape loss only for training samples at sigma <= this
    twin_weight: float = 0.0           # > 0: train on shape twins (data/shape_twins.py) + this x their difference loss
    twin_input: str = "own"            # same: the twin reads the original's noisy image (only the caption differs)
    twin_min_sigma: float = 0.0        # twin_input same: the difference term only at sigma >= this
    ema_decay: float | None = None
    image_size: int | None = None      # pixels (default: the preset's)
    image_root: str | None = None
    val_fraction: float = 0.05
    max_val: int = 256
    shapes_train: int = 5000
    sample_prompts: list[str] | None = None  # fixed prompts of the sample grids (default: 4 validation captions)
    sample_steps: int = 20
    overrides: dict = field(default_factory=dict)  # extra TextToImage config fields


def _text_tower(path: str):
    tower = api.load(path)
    if tower.family == "clip":
        tower = tower.text
    if not hasattr(tower, "encode"):
        raise ValueError(f"{path} holds a {tower.family} model with no text `encode`; pass a CLIP run or CLIP text "
                         "encoder folder")
    return tower


def _autoencoder(path: str):
    vae = api.load(path)
    vae = vae.vae if vae.family == "text_to_image" and vae.vae is not None else vae
    if vae.family != "vae":
        raise ValueError(f"{path} holds a {vae.family} model, not an AutoencoderKL")
    return vae


def make_tokenizer(args: DiffusionPretrainArgs, texts: list[str], resume: bool) -> Tokenizer:
    out = Path(args.out)
    if resumable(out, resume):
        return api.load_tokenizer(out)
    for source in (args.model, args.text_encoder):
        if source:
            return api.load_tokenizer(source)
    return train_word_tokenizer(texts)


def make_model(args: DiffusionPretrainArgs, tokenizer: Tokenizer) -> TextToImage:
    if args.model:
        return api.load_as(args.model, "text_to_image").train()
    _, base = registry.preset_of(args.preset or DEFAULT_PRESET, "text_to_image")
    f = dataclasses.asdict(base)
    f["denoiser"] = dict(f["denoiser"])
    if f["vae"] is not None and not args.vae:
        raise ValueError(f"preset {args.preset!r} works in an autoencoder's latent space: pass --vae (a lingvis vae "
                         "run, `lingvis pretrain vae`, or a diffusers vae/ folder)")
    known = {x.name for x in dataclasses.fields(registry.family(f["denoiser_family"]).config_cls)}
    tower = _text_tower(args.text_encoder) if args.text_encoder else None
    if tower is not None:
        f.update(text_family=tower.family, text=dataclasses.asdict(tower.config), lock_text=not args.unlock_text)
        f["denoiser"]["cross_attention_dim" if "cross_attention_dim" in known else "text_dim"] = tower.out_dim
    else:
        f["text"] = {**f["text"], "vocab_size": tokenizer.vocab_size}
    vae = _autoencoder(args.vae) if args.vae else None
    if vae is not None:
        f["vae"] = dataclasses.asdict(vae.config)
    if f["vae"] is not None:
        z = f["vae"]["latent_channels"]
        f["denoiser"].update({k: z for k in ("in_channels", "out_channels") if k in known})  # DiT: no out_ field
    down = 2 ** (len(f["vae"]["block_out_channels"]) - 1) if f["vae"] is not None else 1
    if args.image_size:
        f["denoiser"]["sample_size"] = args.image_size // down
    elif vae is not None:  # the size the autoencoder was trained at
        f["denoiser"]["sample_size"] = vae.config.sample_size // down
    if args.objective:
        if args.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {args.objective!r}")
        f["scheduler"] = dict(OBJECTIVES[args.objective])
    if args.ema_decay is not None:
        f["ema_decay"] = args.ema_decay
    text_family = args.overrides.get("text_family", f["text_family"])
    if text_family != f["text_family"]:  # another text family: keep the tower fields it also has (vocab, width)
        kept = {x.name for x in dataclasses.fields(registry.family(text_family).config_cls)}
        f["text"] = {k: v for k, v in f["text"].items() if k in kept}
    for k, v in args.overrides.items():
        f[k] = {**f[k], **v} if isinstance(v, dict) and isinstance(f.get(k), dict) else v
    model = TextToImage(registry.make_config("text_to_image", f))
    if tower is not None:
        model.text_encoder.load_state_dict(tower.state_dict())
    if vae is not None:
        model.vae.load_state_dict(vae.state_dict())
    if model.ema is not None:
        model.ema.load_state_dict(model.denoiser.state_dict())
    return model.train()


def image_transform(size: int) -> ImageTransform:
    """Resize (box filter: clean edges for drawn shapes) and map to [-1, 1]; no flips (captions say left/right)."""
    return ImageTransform(size=size, crop=size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resample=Image.BOX)


def default_prompts(val_groups, n: int = 4) -> list[str]:
    seen: list[str] = []
    for g in val_groups:
        if g[0].text not in seen:
            seen.append(g[0].text)
        if len(seen) == n:
            break
    return seen


def twin_scenes(args: DiffusionPretrainArgs) -> Path:
    """The scenes file of a generated shapes training split (`captions_X.json` -> `scenes_X.jsonl` beside it)."""
    data = Path(args.data) if args.data else Path(args.out) / "shapes" / "captions_train.json"
    path = data.with_name(data.name.replace("captions_", "scenes_")).with_suffix(".jsonl")
    if not path.is_file():
        raise ValueError(f"twin_weight needs the shapes scenes of the training split: no {path}")
    return path


def pretrain_diffusion(args: DiffusionPretrainArgs, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train (or resume) a text-to-image model; returns the trainer summary plus data/parameter counts."""
    torch.manual_seed(cfg.seed)
    train_groups, val_groups, info = make_datasets(args, cfg.seed)
    tokenizer = make_tokenizer(args, [r.text for g in train_groups for r in g], resume)
    model = make_model(args, tokenizer)
    repa_encoder = None
    if args.repa_weight:
        if not args.repa_encoder:
            raise ValueError("repa_weight > 0 needs repa_encoder (--repa-encoder: a lingvis CLIP run)")
        repa_encoder = load_repa_encoder(args.repa_encoder, args.repa_layer)
        if model.repa_head is None:  # a fresh preset or a --model without one; a --resume run's config has it
            model.add_repa_head(repa_encoder.dim)
        elif model.config.repa_dim != repa_encoder.dim:
            raise ValueError(f"the model's REPA head predicts {model.config.repa_dim} features but the encoder "
                             f"{args.repa_encoder} gives {repa_encoder.dim}")
    if args.shape_weight and not args.shape_segmenter:
        raise ValueError("shape_weight > 0 needs shape_segmenter (a folder from benchmarks.t2i_shape_seg)")
    segmenter = load_shape_segmenter(args.shape_segmenter) if args.shape_weight else None
    size = model.image_size
    skipped = SkipCounter()
    train_images = CaptionedImages(train_groups, image_transform(size), seed=cfg.seed, cache=True)
    if args.twin_weight:
        train_images = ShapeTwins(train_images, twin_scenes(args), size, cfg.seed)
    train_set = SafeDataset(train_images, skipped)
    val_set = SafeDataset(CaptionedImages(val_groups, image_transform(size), random_caption=False, cache=True),
                          skipped)
    length = model.text_length
    task = DiffusionTask(lambda texts: prompt_tokens(tokenizer, texts, length), model.config.scheduler,
                         args.text_dropout, cfg.seed, cfg.grad_accum,
                         sample_prompts=args.sample_prompts or default_prompts(val_groups),
                         sample_dir=Path(args.out) / "samples", tokenizer=tokenizer, sample_steps=args.sample_steps,
                         snr_gamma=args.snr_gamma, timesteps=args.timesteps, timestep_mean=args.timestep_mean,
                         lowres_weight=args.lowres_weight, lowres_x0=args.lowres_x0,
                         object_weight=args.object_weight, edge_weight=args.edge_weight,
                         repa_weight=args.repa_weight, repa_depth=args.repa_depth, repa_encoder=repa_encoder,
                         repa_center=args.repa_center, shape_weight=args.shape_weight, shape_segmenter=segmenter,
                         shape_max_sigma=args.shape_max_sigma, twin_weight=args.twin_weight,
                         twin_input=args.twin_input, twin_min_sigma=args.twin_min_sigma)
    trainer = Trainer(model, task, train_set, val_set, cfg, args.out, tokenizer=tokenizer)
    summary = trainer.fit(resume=resume)
    summary.update(format=info.get("format"), train_images=len(train_groups), val_images=len(val_groups),
                   image_size=size, space="latent" if model.vae is not None else "pixel",
                   skipped_samples=skipped.count, parameters=sum(p.numel() for p in model.denoiser.parameters()),
                   trainable=sum(p.numel() for p in model.parameters() if p.requires_grad))
    return summary


def shapes_recipe(out: str, data: str | None = None, val_data: str | None = None, minutes: float | None = 15.0,
                  max_steps: int | None = None) -> tuple[DiffusionPretrainArgs, TrainConfig]:
    """The best measured recipe for the built-in shapes (docs/text_to_image.md): the 32px pixel-space
    t2i-shapes-dit-conv-s DiT (width 128, 4 layers, residual conv head) with a word-level text tower trained with
    it, flow matching at logit-normal noise levels, Adam at 2e-3, batch 32, on a budget of `minutes` of this
    process's CPU time."""
    args = DiffusionPretrainArgs(out=out, data=data, val_data=val_data, preset=DEFAULT_PRESET, max_val=64,
                                 **SHAPES_RECIPE)
    cfg = TrainConfig(max_steps=max_steps or 100_000, max_minutes=minutes, budget_clock="cpu", batch_size=32,
                      lr=SHAPES_LR, warmup_steps=50, beta2=0.99, weight_decay=0.0, eval_every=250, eval_batches=2,
                      log_every=50, progress=False)
    return args, cfg
