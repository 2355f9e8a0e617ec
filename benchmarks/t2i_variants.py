"""Short learning runs of shapes-recipe variants at equal CPU budgets: each trains
`lingvis.recipes.diffusion.shapes_recipe` with the given changes for `--minutes` of process CPU time, then
reports steps, CPU seconds, the load, a fixed-protocol validation loss (the raw denoiser on the first 64
validation images at seeded logit-normal(0, 1) noise levels and noise, whatever the run trained on, so rows
compare) and a GenEval-style slice at guidance 4 (`--per-category` prompts each, 25 steps) with its grid.

    python -m benchmarks.t2i_variants --out DIR --name NAME [--minutes 4] [--dim 128 --depth 4] [--lr 2e-3]
        [--timestep-mean -0.5] [--batch 32] [--ema-decay 0.999] [--per-category 10]
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
    ap.add_argument("--timestep-mean", type=float)
    ap.add_argument("--ema-decay", type=float)
    ap.add_argument("--text-dropout", type=float)
    ap.add_argument("--per-category", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(1)
    import lingvis
    from lingvis.data.shapes import generate_shapes
    from lingvis.eval.text_to_image import evaluate_text_to_image
    from lingvis.recipes.diffusion import pretrain_diffusion, shapes_recipe

    root = Path(a.out)
    data = root / "shapes"
    if not (data / "captions_train.json").is_file():
        generate_shapes(data, n_train=5000, n_val=200, n_test=200, image_size=32)
    run = root / a.name
    args, cfg = shapes_recipe(str(run), str(data / "captions_train.json"), str(data / "captions_val.json"),
                              minutes=a.minutes, max_steps=a.steps)
    den = {k: v for k, v in (("dim", a.dim), ("depth", a.depth), ("patch_size", a.patch), ("conv_out", a.conv_out))
           if v is not None}
    if den:
        args.overrides = {"denoiser": den}
    for field, value in (("timestep_mean", a.timestep_mean), ("ema_decay", a.ema_decay),
                         ("text_dropout", a.text_dropout)):
        if value is not None:
            setattr(args, field, value)
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
    if a.per_category > 0:  # 0: no GenEval slice (score the run with benchmarks.t2i_learning --model instead)
        r = evaluate_text_to_image(model, tok, per_category=a.per_category, steps=25, guidance_scale=4.0,
                                   grid=str(run / "grid_guidance4.png"))
        res["geneval_g4"] = {k: round(v, 3) for k, v in r["geneval"].items()}
    (run / "variant.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
