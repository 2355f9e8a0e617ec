"""Short learning runs of shapes-recipe variants at equal CPU budgets: each trains
`lingvis.recipes.diffusion.shapes_recipe` with the given changes for `--minutes` of process CPU time, then
reports steps, CPU seconds, the load, a fixed-protocol validation loss (the raw denoiser on the first 64
validation images at seeded logit-normal(0, 1) noise levels and noise, whatever the run trained on, so rows
compare) and a GenEval-style slice at guidance 4 (`--per-category` prompts each, 25 steps) with its grid.

    python -m benchmarks.t2i_variants --out DIR --name NAME [--minutes 4] [--dim 128 --depth 4] [--lr 2e-3]
        [--timestep-mean -0.5 | --timestep-mean 2,0] [--batch 32] [--ema-decay 0.999] [--per-category 10]
        [--preset t2i-shapes --denoiser '{"block_out_channels": [16, 32, 64]}'] [--guidance 4,1]
        [--prediction x0] [--extra-single 5000] [--text-mask] [--restore 0.5,0.7,0.9]
        [--lock-text] [--lowres 4 [--lowres-x0]] [--object-weight 4] [--edge-weight 1] [--single-only 5000]
        [--vae VAE_RUN --patch 2] [--text-encoder CLIP_RUN | --text-oracle]
        [--repa-weight 0.5 --repa-depth 2 --repa-encoder CLIP_RUN [--repa-center] [--repa-layer -2]]
        [--shape-weight 0.1 --shape-segmenter SEG_DIR [--shape-max-sigma 0.9]]
        [--twin-weight 4 [--twin-input same --twin-min-sigma 0.5]]

`--lock-text` keeps the random-init text tower frozen (trained with the denoiser it collapses: docs/text_to_image.md);
`--lowres W` adds the multi-scale loss (`DiffusionTask.lowres_weight`); `--single-only N` trains on N single-object
scenes alone (the conditioning sanity task); `--vae RUN` trains the denoiser in that autoencoder's latent space
(`benchmarks.t2i_latent_vae`; its CPU time is not in this run's; the fixed-protocol validation loss is then in
latent units, not comparable with pixel runs); `--text-encoder RUN` conditions on a frozen CLIP text tower;
`--text-oracle` on fixed random word vectors (`word_bag_text`: the exact-conditioning diagnostic).
`--repa-weight W --repa-encoder RUN` adds REPA (`DiffusionTask.repa_weight`: block `--repa-depth`'s tokens align
with that CLIP image tower's (or image-tower folder's) features of the clean image; its CPU time is in the run's).
`--shape-weight W --shape-segmenter DIR` adds the shape loss (`DiffusionTask.shape_weight`: a frozen per-pixel shape
segmenter from `benchmarks.t2i_shape_seg` reads the x0 estimate; its training CPU time is not in this run's).
`--twin-weight W` trains on shape twins (`data/shape_twins.py`; each step then sees 2 x `--batch` images) with the
pair-difference loss (`DiffusionTask.twin_weight`).

`--restore` adds `benchmarks.t2i_restore`'s counts (40 single-object test scenes noised to each sigma and
integrated back; one object of the right shape / the right colour found) for flow-matching runs.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch


def fixed_val_loss(model, tokenizer, data: Path, n: int = 64) -> float:
    """Mean flow/noise loss of the raw denoiser on the first n validation images (seeded t and noise)."""
    from lingvis.diffusion.sampling import prompt_tokens
    from lingvis.recipes.clip_data import CaptionedImages, load_groups
    from lingvis.recipes.diffusion import image_transform
    from lingvis.tasks.diffusion import DiffusionTask

    groups = load_groups(str(data / "captions_val.json"))[0][:n]
    ds = CaptionedImages(groups, image_transform(model.image_size), random_caption=False)
    task = DiffusionTask(lambda t: prompt_tokens(tokenizer, t, model.text_length), model.config.scheduler,
                         text_dropout=0.0, timesteps="logit_normal")
    model.eval()
    batches = [task.collate([ds[j] for j in range(i, min(i + 32, len(ds)))]) for i in range(0, len(ds), 32)]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return sum(float(task._loss(model, b, g)) for b in batches) / len(batches)


def shapes_data(root: Path) -> Path:
    """`root/shapes`: the default 5000 / 200 / 200 shapes scenes at 32 px, generated on first use."""
    from lingvis.data.shapes import generate_shapes

    data = root / "shapes"
    if not (data / "captions_train.json").is_file():
        generate_shapes(data, n_train=5000, n_val=200, n_test=200, image_size=32)
    return data


def single_rich_data(root: Path, extra: int, seed: int = 0, only: bool = False) -> Path:
    """`root/shapes_single{extra}`: the default 5000 training scenes plus `extra` single-object scenes (other seed),
    written as one COCO-captions training split (captions and images as the built-in generator makes them);
    `only`: `root/shapes_only_single{extra}`, the `extra` single-object scenes alone (the conditioning sanity task)."""
    import random

    from lingvis.data.shapes import _write_split, make_scene, make_split_scenes

    out = root / f"shapes_{'only_' if only else ''}single{extra}"
    if not (out / "captions_train.json").is_file():
        (out / "images").mkdir(parents=True, exist_ok=True)
        rng = random.Random(f"lingvis-shapes/{seed}/train-single")
        base = [] if only else make_split_scenes("train", 5000, seed)
        _write_split(out, "train", base + [make_scene(rng, 1, 1) for _ in range(extra)], 1, seed, 32)
    return out / "captions_train.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--dim", type=int)
    ap.add_argument("--depth", type=int)
    ap.add_argument("--patch", type=int)
    ap.add_argument("--conv-out", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--batch", type=int)
    ap.add_argument("--timestep-mean", type=lambda v: tuple(float(x) for x in v.split(",")),
                    help="logit-normal mean; comma-separated: an equal-weight mixture (e.g. 2,0)")
    ap.add_argument("--ema-decay", type=float)
    ap.add_argument("--text-dropout", type=float)
    ap.add_argument("--lowres", type=float, help="multi-scale loss weight (lowres_weight)")
    ap.add_argument("--lowres-x0", action="store_true", help="the multi-scale loss in x0 units (lowres_x0)")
    ap.add_argument("--object-weight", type=float, help="object pixels weigh 1 + this in the loss (object_weight)")
    ap.add_argument("--edge-weight", type=float, 
                    help="+ this x the squared error of neighbour differences (edge_weight)")
    ap.add_argument("--per-category", type=int, default=10)
    ap.add_argument("--preset", help="a text_to_image preset in place of the recipe's denoiser")
    ap.add_argument("--denoiser", help="JSON object of denoiser config fields to override")
    ap.add_argument("--guidance", default="4", help="comma-separated guidance scales of the GenEval slices")
    ap.add_argument("--prediction", choices=("native", "x0"), help="x0: the denoiser predicts the clean image")
    ap.add_argument("--text-mask", action="store_true", help="mask the prompt padding (use_text_mask)")
    ap.add_argument("--lock-text", action="store_true", help="keep the (random-init) text tower frozen (lock_text)")
    ap.add_argument("--extra-single", type=int, default=0, help="add this many single-object training scenes")
    ap.add_argument("--single-only", type=int, default=0,
                    help="train on this many single-object scenes alone (the conditioning sanity task)")
    ap.add_argument("--vae", help="an AutoencoderKL run (benchmarks.t2i_latent_vae): train in its latent space")
    ap.add_argument("--text-encoder", help="a CLIP run whose text tower conditions the denoiser, frozen")
    ap.add_argument("--text-oracle", action="store_true",
                    help="condition on fixed random word vectors (word_bag_text), frozen: the exact-conditioning "
                         "diagnostic (the word tokenizer of the data; not with --text-encoder)")
    ap.add_argument("--repa-weight", type=float, default=0.0, help="REPA loss weight (repa_weight; 0 = off)")
    ap.add_argument("--repa-depth", type=int, default=2, help="REPA: the aligned DiT block (from 1)")
    ap.add_argument("--repa-encoder", help="REPA: a CLIP run whose frozen image tower gives the targets")
    ap.add_argument("--repa-center", action="store_true", help="REPA: targets minus their batch mean (repa_center)")
    ap.add_argument("--repa-layer", type=int, help="REPA: a ViT encoder's hidden state after this block (e.g. -2)")
    ap.add_argument("--shape-weight", type=float, default=0.0, help="shape segmenter loss weight (0 = off)")
    ap.add_argument("--shape-segmenter", help="a ShapeSegmenter folder (benchmarks.t2i_shape_seg)")
    ap.add_argument("--shape-max-sigma", type=float, default=1.0, help="the shape loss only at sigma <= this")
    ap.add_argument("--twin-weight", type=float, default=0.0, help="shape twins + pair-difference loss weight")
    ap.add_argument("--twin-input", choices=("own", "same"), default="own",
                    help="same: the twin reads the original's noisy image, only the caption differs")
    ap.add_argument("--twin-min-sigma", type=float, default=0.0, help="--twin-input same: the term at sigma >= this")
    ap.add_argument("--restore", default="", help="comma-separated start sigmas of the restoration counts")
    a = ap.parse_args()
    torch.set_num_threads(1)
    import lingvis
    from lingvis.eval.text_to_image import evaluate_text_to_image
    from lingvis.recipes.diffusion import pretrain_diffusion, shapes_recipe

    root = Path(a.out)
    data = shapes_data(root)
    run = root / a.name
    train = single_rich_data(root, a.extra_single) if a.extra_single else data / "captions_train.json"
    if a.single_only:
        train = single_rich_data(root, a.single_only, only=True)
    args, cfg = shapes_recipe(str(run), str(train), str(data / "captions_val.json"), minutes=a.minutes,
                              max_steps=a.steps)
    if a.preset:
        args.preset = a.preset
    den = {k: v for k, v in (("dim", a.dim), ("depth", a.depth), ("patch_size", a.patch), ("conv_out", a.conv_out))
           if v is not None}
    den.update(json.loads(a.denoiser) if a.denoiser else {})
    if den:
        args.overrides["denoiser"] = den
    if a.prediction:
        args.overrides["prediction"] = a.prediction
    if a.text_mask:
        args.overrides["use_text_mask"] = True
    if a.lock_text:
        args.overrides["lock_text"] = True
    if a.text_oracle:
        if a.text_encoder:
            raise SystemExit("--text-oracle replaces the text tower: drop --text-encoder")
        args.overrides.update(text_family="word_bag_text", lock_text=True)
    if a.timestep_mean is not None:
        args.timestep_mean = a.timestep_mean[0] if len(a.timestep_mean) == 1 else a.timestep_mean
    for field, value in (("ema_decay", a.ema_decay),
                         ("text_dropout", a.text_dropout), ("lowres_weight", a.lowres),
                         ("object_weight", a.object_weight), ("edge_weight", a.edge_weight)):
        if value is not None:
            setattr(args, field, value)
    args.lowres_x0 = a.lowres_x0
    args.vae, args.text_encoder = a.vae, a.text_encoder
    args.repa_weight, args.repa_depth, args.repa_encoder = a.repa_weight, a.repa_depth, a.repa_encoder
    args.repa_center, args.repa_layer = a.repa_center, a.repa_layer
    args.shape_weight, args.shape_segmenter, args.shape_max_sigma = a.shape_weight, a.shape_segmenter, a.shape_max_sigma
    args.twin_weight, args.twin_input, args.twin_min_sigma = a.twin_weight, a.twin_input, a.twin_min_sigma
    if a.lr is not None:
        cfg.lr = a.lr
    if a.batch is not None:
        cfg.batch_size = a.batch
    args.sample_prompts = ["a small red circle", "a large blue square to the left of a small green star"]
    cpu, wall, load = time.process_time(), time.perf_counter(), os.getloadavg()[0]
    summary = pretrain_diffusion(args, cfg)
    res = {"name": a.name, "argv": vars(a), "steps": summary["step"], "parameters": summary["parameters"],
           "train_cpu_s": round(time.process_time() - cpu, 1), "train_wall_s": round(time.perf_counter() - wall, 1),
           "load": [round(load, 2), round(os.getloadavg()[0], 2)], "run_val_loss": summary["eval"].get("loss")}
    model, tok = lingvis.load(str(run)), lingvis.load_tokenizer(str(run))
    res["val_loss"] = round(fixed_val_loss(model, tok, data), 4)
    for g in [float(x) for x in a.guidance.split(",")] if a.per_category > 0 else []:
        # per_category 0: no GenEval slice (score the run with benchmarks.t2i_learning --model instead)
        t0 = time.process_time()
        r = evaluate_text_to_image(model, tok, per_category=a.per_category, steps=25, guidance_scale=g,
                                   grid=str(run / f"grid_guidance{g:g}.png"))
        res[f"geneval_g{g:g}"] = {k: round(v, 3) for k, v in r["geneval"].items()}
        res[f"geneval_g{g:g}_cpu_s"] = round(time.process_time() - t0, 1)
    if a.restore:
        from benchmarks.t2i_restore import restore_counts
        from lingvis.data.shapes import make_split_scenes

        scenes = [s for s in make_split_scenes("test", 800, 0) if len(s.objects) == 1][:40]
        rows = restore_counts(model, tok, scenes, [float(x) for x in a.restore.split(",")])
        res["restore"] = {f"{r['sigma']:g}": f"{r['shape']}/{r['colour']}/{r['n']}" for r in rows}
    (run / "variant.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
