"""`lingvis pretrain diffusion`, `lingvis generate-image`, `lingvis evaluate text-to-image`."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .common import add_train_args, print_json, train_config


def register(sub, groups) -> None:
    _register_pretrain(groups["pretrain"])
    _register_pretrain_vae(groups["pretrain"])
    _register_generate(sub)
    _register_evaluate(groups["evaluate"])


def _register_pretrain(group) -> None:
    p = group.add_parser("diffusion", help="text-to-image diffusion pretraining (UNet, pixel or latent space)",
                         description="Train a text-to-image diffusion model on captioned images. --data: COCO "
                         "captions JSON, JSONL {image,text}, CSV/TSV or webdataset .tar shards; without it the "
                         "synthetic shapes set is generated under OUT/shapes. Sample grids of fixed prompts go to "
                         "OUT/samples at every evaluation.")
    add_train_args(p, max_steps=3000, batch_size=32, lr=None, eval_every=500, warmup=50)
    next(a for a in p._actions if "--lr" in a.option_strings).help = (
        "peak learning rate (Adam); default: the shapes recipe's 2e-3 without --preset/--model, else 1e-3")
    p.set_defaults(weight_decay=0.0)  # the shapes recipe's optimizer (with beta2 0.99, set in run_pretrain)
    p.add_argument("--val-data", help="held-out captioned images (default: a split of --data by image)")
    p.add_argument("--image-root", help="folder that relative image paths in --data are under")
    p.add_argument("--text-encoder", help="frozen text tower: a lingvis CLIP run, an HF CLIP folder or a CLIP "
                   "text-encoder folder (default: a small tower trained with the denoiser)")
    p.add_argument("--unlock-text", action="store_true", help="fine-tune the --text-encoder instead of freezing it")
    p.add_argument("--vae", help="AutoencoderKL (lingvis vae run or diffusers vae/ folder): train in its latent space")
    p.add_argument("--objective", choices=["epsilon", "v_prediction", "flow"],
                   help="what the denoiser predicts (default: the shapes recipe's for the default preset, else the "
                   "preset's)")
    p.add_argument("--text-dropout", type=float, default=0.1,
                   help="fraction of captions replaced by the empty prompt (classifier-free guidance)")
    p.add_argument("--snr-gamma", type=float, help="min-SNR-gamma loss weighting, e.g. 5 (epsilon/v objectives)")
    p.add_argument("--timesteps", choices=["uniform", "logit_normal"],
                   help="training noise levels: uniform, or logit-normal (sigmoid of a standard normal, SD3); default: "
                   "the shapes recipe's for the default preset, else uniform")
    p.add_argument("--ema-decay", type=float, help="decay of the weight EMA used for sampling (default 0.999)")
    p.add_argument("--repa-weight", type=float, default=0.0,
                   help="REPA: + this weight x the negative cosine of a DiT block's tokens (through a training-only "
                   "head) and a frozen image encoder's patch features of the clean image (e.g. 0.5; 0 = off)")
    p.add_argument("--repa-depth", type=int, default=2, help="REPA: the DiT block whose output is aligned (from 1)")
    p.add_argument("--repa-encoder", help="REPA: a lingvis CLIP run whose frozen image tower gives the targets")
    p.add_argument("--repa-center", action="store_true", help="REPA: targets minus their batch mean per channel")
    p.add_argument("--repa-layer", type=int, help="REPA: a ViT encoder's hidden state after this block (e.g. -2)")
    p.add_argument("--image-size", type=int, help="training image side in pixels (default: the preset's)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="held-out fraction when --val-data is absent")
    p.add_argument("--shapes-train", type=int, default=5000, help="built-in data: training images")
    p.add_argument("--sample-prompt", action="append", default=None,
                   help="fixed prompt of the sample grids (repeatable; default: 4 validation captions)")
    p.add_argument("--sample-steps", type=int, default=20, help="sampling steps of the sample grids")
    p.set_defaults(func=run_pretrain)


def _register_pretrain_vae(group) -> None:
    p = group.add_parser("vae", help="KL autoencoder (AutoencoderKL) pretraining: a latent space for diffusion",
                         description="Train an AutoencoderKL on images (L1 + KL); its scaling_factor is set from "
                         "the validation latents. Use the run as `pretrain diffusion --vae RUN`.")
    add_train_args(p, max_steps=1500, batch_size=32, lr=1e-3, eval_every=500, warmup=50)
    p.add_argument("--val-data", help="held-out images (default: a split of --data)")
    p.add_argument("--image-root", help="folder that relative image paths in --data are under")
    p.add_argument("--image-size", type=int, help="image side in pixels (default: the preset's)")
    p.add_argument("--kl-weight", type=float, default=1e-4, help="weight of the KL term against L1 reconstruction")
    p.add_argument("--shapes-train", type=int, default=5000, help="built-in data: training images")
    p.set_defaults(func=run_pretrain_vae)


def _register_generate(sub) -> None:
    g = sub.add_parser("generate-image", aliases=["text-to-image"], help="generate images from a text prompt",
                       description="Sample images from a lingvis text-to-image run or a diffusers pipeline folder; "
                       "writes one PNG grid (prompt-major rows of --n images).")
    g.add_argument("prompt", nargs="+", help="one or more prompts")
    g.add_argument("--model", required=True, help="text-to-image run/checkpoint or diffusers pipeline folder")
    g.add_argument("--negative-prompt", help="what to steer away from (classifier-free guidance)")
    g.add_argument("--steps", type=int, default=25, help="sampling steps")
    g.add_argument("--guidance", type=float, default=4.0, help="classifier-free guidance scale (1 = none)")
    g.add_argument("--guidance-below", type=float, default=1.0,
                   help="guide only at timesteps <= this fraction of the schedule (flow: sigma); 1 = every step")
    g.add_argument("--seed", type=int, default=0, help="seed of the initial noise (same seed, same images)")
    g.add_argument("--n", type=int, default=4, help="images per prompt")
    g.add_argument("--scheduler", help="ddim | dpm++ | euler | ddpm | flow-euler (default: the model's)")
    g.add_argument("--size", type=int, help="image side in pixels (default: the model's)")
    g.add_argument("--out", default="grid.png", help="PNG grid path")
    g.add_argument("--cols", type=int, help="grid columns (default --n)")
    g.add_argument("--device", default="cpu", help="cpu | cuda")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    g.set_defaults(func=run_generate)


def _register_evaluate(group) -> None:
    e = group.add_parser("text-to-image", help="GenEval-style compositional score on the shapes world, CLIP score, FID",
                         description="Generate images for compositional prompts (single object, two objects, "
                         "counting, colours, position, attribute binding), score them with the shapes detector, "
                         "and optionally CLIP score and FID on CLIP image features against real renders.")
    e.add_argument("--model", required=True, help="text-to-image run/checkpoint or diffusers pipeline folder")
    e.add_argument("--per-category", type=int, default=40, help="prompts per category")
    e.add_argument("--steps", type=int, default=25, help="sampling steps")
    e.add_argument("--guidance", type=float, default=4.0, help="classifier-free guidance scale")
    e.add_argument("--guidance-below", type=float, default=1.0,
                   help="guide only at timesteps <= this fraction of the schedule (flow: sigma); 1 = every step")
    e.add_argument("--scheduler", help="sampler (default: the model's)")
    e.add_argument("--seed", type=int, default=0, help="seed of prompts and noise")
    e.add_argument("--batch-size", type=int, default=32, help="images sampled at once")
    e.add_argument("--clip", help="a lingvis CLIP run for CLIP score and FID (CLIP image features)")
    e.add_argument("--real", type=int, default=500, help="real renders for FID")
    e.add_argument("--grid", help="write a PNG grid of the first images of every category here")
    e.add_argument("--out", help="write the JSON report here too")
    e.add_argument("--device", default="cpu", help="cpu | cuda")
    e.set_defaults(func=run_evaluate)


def run_pretrain(args) -> int:
    from ..recipes.diffusion import SHAPES_LR, SHAPES_RECIPE, DiffusionPretrainArgs, pretrain_diffusion

    if args.beta2 is None:
        args.beta2 = 0.99
    if args.lr is None:  # the shapes recipe's rate with its denoiser, 1e-3 otherwise
        args.lr = SHAPES_LR if args.preset is None and args.model is None else 1e-3
    if args.preset is None and args.model is None and args.objective is None and args.snr_gamma is None:
        args.objective, args.snr_gamma = SHAPES_RECIPE["objective"], SHAPES_RECIPE["snr_gamma"]  # shapes_recipe's
        args.timesteps = args.timesteps or SHAPES_RECIPE["timesteps"]
    args.timesteps = args.timesteps or "uniform"
    pargs = DiffusionPretrainArgs(out=args.out, data=args.data, val_data=args.val_data, preset=args.preset,
                                  model=args.model, text_encoder=args.text_encoder, unlock_text=args.unlock_text,
                                  vae=args.vae, objective=args.objective, text_dropout=args.text_dropout,
                                  snr_gamma=args.snr_gamma, timesteps=args.timesteps,
                                  ema_decay=args.ema_decay, repa_weight=args.repa_weight,
                                  repa_depth=args.repa_depth, repa_encoder=args.repa_encoder,
                                  repa_center=args.repa_center, repa_layer=args.repa_layer,
                                  image_size=args.image_size, image_root=args.image_root,
                                  val_fraction=args.val_fraction, shapes_train=args.shapes_train,
                                  sample_prompts=args.sample_prompt, sample_steps=args.sample_steps)
    print_json(pretrain_diffusion(pargs, train_config(args), resume=args.resume))
    return 0


def run_pretrain_vae(args) -> int:
    from ..recipes.vae import VAEPretrainArgs, pretrain_vae

    vargs = VAEPretrainArgs(out=args.out, data=args.data, val_data=args.val_data, preset=args.preset,
                            image_size=args.image_size, kl_weight=args.kl_weight, image_root=args.image_root,
                            shapes_train=args.shapes_train)
    print_json(pretrain_vae(vargs, train_config(args), resume=args.resume))
    return 0


def _load(path: str, device: str):
    from .. import api

    model = api.load(path, device=device)
    if model.family != "text_to_image":
        raise ValueError(f"{path} holds a {model.family} model; generate-image needs a text-to-image model")
    return model, api.load_tokenizer(path)


def run_generate(args) -> int:
    from ..diffusion.sampling import generate_images, image_grid

    model, tok = _load(args.model, args.device)
    start = time.perf_counter()
    images = generate_images(model, tok, args.prompt, negative_prompt=args.negative_prompt, n=args.n, steps=args.steps,
                             guidance_scale=args.guidance, seed=args.seed, scheduler=args.scheduler, height=args.size,
                             width=args.size, progress=not args.no_progress, guidance_below=args.guidance_below)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(images, cols=args.cols or args.n).save(out)
    print_json({"out": str(out), "prompts": args.prompt, "images": len(images), "size": list(images[0].size),
                "steps": args.steps, "guidance": args.guidance, "seed": args.seed,
                "seconds": round(time.perf_counter() - start, 2)})
    return 0


def run_evaluate(args) -> int:
    from ..eval.text_to_image import evaluate_text_to_image

    model, tok = _load(args.model, args.device)
    clip = clip_tok = None
    if args.clip:
        from .. import api

        clip, clip_tok = api.load(args.clip, device=args.device), api.load_tokenizer(args.clip)
        if clip.family != "clip":
            raise ValueError(f"--clip {args.clip} holds a {clip.family} model, not a CLIP")
    report = evaluate_text_to_image(model, tok, per_category=args.per_category, steps=args.steps,
                                    guidance_scale=args.guidance, scheduler=args.scheduler, seed=args.seed,
                                    batch_size=args.batch_size, clip=clip, clip_tokenizer=clip_tok, n_real=args.real,
                                    grid=args.grid, guidance_below=args.guidance_below)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    print_json(report)
    return 0
