"""Demo step: a small text-to-image DiT (the built-in shapes recipe) trained from scratch on the synthetic
shapes (a few minutes on 2 cores; short of the 15-minute run of benchmarks/t2i_learning.py), its GenEval-style
score table and a grid of generated images."""
from __future__ import annotations

from pathlib import Path

from .. import api
from ..data.shapes import generate_shapes
from ..diffusion.sampling import generate_images, image_grid
from ..eval.text_to_image import evaluate_text_to_image
from ..recipes.diffusion import pretrain_diffusion, shapes_recipe
from . import step

PROMPTS = ("a small red circle", "a large blue square to the left of a small green star",
           "three shapes: a yellow cross, a purple triangle and an orange circle")


@step("text_to_image")
def demo_text_to_image(out: Path, minutes: float = 2.6, steps: int = 300) -> dict:
    run, data = out / "text_to_image", out / "text_to_image" / "shapes"
    if not (data / "captions_train.json").is_file():
        generate_shapes(data, n_train=3000, n_val=100, n_test=0, image_size=32)
    args, cfg = shapes_recipe(str(run), str(data / "captions_train.json"), str(data / "captions_val.json"),
                              minutes=minutes, max_steps=steps)
    args.max_val, args.sample_prompts = 32, list(PROMPTS)
    cfg.budget_clock, cfg.eval_every, cfg.eval_batches, cfg.warmup_steps = "wall", 10_000, 1, 30
    summary = pretrain_diffusion(args, cfg)
    model, tok = api.load(run), api.load_tokenizer(run)
    images = generate_images(model, tok, list(PROMPTS), n=4, steps=25, guidance_scale=4.0, seed=0, progress=False)
    grid = run / "generated.png"
    image_grid(images, cols=4).save(grid)
    report = evaluate_text_to_image(model, tok, per_category=10, steps=20, guidance_scale=4.0)
    scores = report["geneval"]
    print(f"\n[text_to_image] trained {summary['step']} steps in {summary['seconds']:.0f}s "
          f"({summary['parameters']:,} denoiser parameters, {summary['image_size']}px {summary['space']} space)")
    print("[text_to_image] GenEval-style scores (10 prompts per category, guidance 4, 20 steps; detector "
          f"{report['detector']['scene_accuracy']:.1%} on ground-truth renders):")
    for k, v in scores.items():
        print(f"    {k:18s} {v:.2f}")
    print(f"[text_to_image] generated images for {len(PROMPTS)} prompts -> {grid}")
    return {"geneval": scores, "steps": summary["step"], "grid": str(grid), "run": str(run)}
