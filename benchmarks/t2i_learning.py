"""Text-to-image learning run on a CPU, from scratch: the built-in shapes recipe (`shapes_recipe`: the
t2i-shapes-dit-conv-s DiT (width 128, 4 layers) with its residual conv head, Adam 2e-3, 32px pixel space, flow
matching at logit-normal noise levels, word-level text tower trained with it) for 15 CPU-minutes on the synthetic
shapes train split, then `lingvis eval text-to-image`:

* GenEval-style compositional scores (single object, two objects, counting, colours, position, attribute
  binding; detector validated on ground-truth renders first) at guidance 4 and at guidance 1 (no guidance);
  targets: overall >= 0.80, single object >= 0.95, colours >= 0.90, two objects >= 0.80, position >= 0.70,
  counting >= 0.70, attribute binding >= 0.60;
* CLIP score and FID on CLIP image features (a clip-cnn-shapes CLIP trained here first, `--clip-steps`)
  against 500 held-out real renders;
* overall score against sampling steps (10 / 25 / 50) for DDIM, DPM-Solver++ and Euler -> `steps.png` (for a
  flow-matching model, as the recipe's: DPM-Solver++ with flow sigmas and FlowMatch-Euler, which is what DDIM
  reduces to for rectified flow).

The training budget is `--minutes` of this process's CPU time (the cosine schedule spans the steps that fit;
`--steps` caps them); process CPU time, wall time and the load average are reported, because on a shared
machine the wall time of a fixed CPU budget varies several-fold. Results go to OUT/results.json and
OUT/results.md. `--clip-steps 0` skips the CLIP score and FID.

    python -m benchmarks.t2i_learning --out DIR [--minutes 15] [--steps N] [--threads 1] [--quick]
        [--model RUN --clip RUN]   # evaluate existing runs instead of training
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

TARGETS = {"overall": 0.80, "single_object": 0.95, "colours": 0.90, "two_objects": 0.80, "position": 0.70,
           "counting": 0.70, "attribute_binding": 0.60}
SAMPLERS = ("ddim", "dpm++", "euler")
# A flow-matching model (the recipe's) has no DDIM or discrete Euler (noise-prediction samplers refuse it): its
# Euler is FlowMatch-Euler, which for rectified flow is also what deterministic DDIM reduces to, and DPM-Solver++
# runs with flow sigmas.
FLOW_SAMPLERS = ("dpm++", "flow-euler")
LABELS = {"flow-euler": "euler (FlowMatch; = DDIM for rectified flow)"}


def sweep_samplers(model) -> tuple[str, ...]:
    """The samplers of the steps sweep for this model's kind (noise prediction or flow matching)."""
    cfg = model.config.scheduler
    flow = cfg.get("_class_name") == "FlowMatchEulerDiscreteScheduler" or bool(cfg.get("use_flow_sigmas"))
    return FLOW_SAMPLERS if flow else SAMPLERS


def _budget(fn):
    cpu, wall, load = time.process_time(), time.perf_counter(), os.getloadavg()[0]
    out = fn()
    return out, {"cpu_seconds": round(time.process_time() - cpu, 1), "wall_seconds": round(time.perf_counter() - wall, 1),
                 "load_avg_start": round(load, 2), "load_avg_end": round(os.getloadavg()[0], 2),
                 "threads": torch.get_num_threads()}


def train_t2i(root: Path, data: Path, steps: int, minutes: float | None) -> dict:
    """The built-in shapes recipe (`lingvis.recipes.diffusion.shapes_recipe`) on a CPU-time budget."""
    from lingvis.recipes.diffusion import pretrain_diffusion, shapes_recipe

    args, cfg = shapes_recipe(str(root / "t2i"), str(data / "captions_train.json"), str(data / "captions_val.json"),
                              minutes=minutes, max_steps=steps)
    args.sample_prompts = ["a small red circle", "a large blue square to the left of a small green star",
                           "three shapes: a yellow cross, a purple triangle and an orange circle"]
    summary, cost = _budget(lambda: pretrain_diffusion(args, cfg))
    return {"steps": summary["step"], "parameters": summary["parameters"], "val_loss": summary["eval"].get("loss"),
            "preset": args.preset, "objective": args.objective, "timesteps": args.timesteps, **cost}


def train_clip(root: Path, data: Path, steps: int) -> dict:
    from lingvis.recipes.clip import CLIPPretrainArgs, pretrain_clip
    from lingvis.train.config import TrainConfig

    args = CLIPPretrainArgs(out=str(root / "clip"), data=str(data / "captions_train.json"),
                            val_data=str(data / "captions_val.json"), preset="clip-cnn-shapes", max_val=256)
    cfg = TrainConfig(max_steps=steps, batch_size=64, lr=1.5e-3, warmup_steps=50, eval_every=steps, eval_batches=2,
                      log_every=50, beta2=0.98, progress=False)
    summary, cost = _budget(lambda: pretrain_clip(args, cfg))
    return {"steps": summary["step"], "val_mean_R@1": summary["eval"].get("mean_R@1"), **cost}


def sweep_plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    for s in dict.fromkeys(r["sampler"] for r in rows):
        pts = sorted((r["steps"], r["overall"]) for r in rows if r["sampler"] == s)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=LABELS.get(s, s))
    ax.set_xlabel("sampling steps")
    ax.set_ylabel("GenEval-style overall score")
    ax.set_title("t2i-shapes: score vs steps (guidance 4)")
    ax.set_xticks([10, 25, 50])
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(res: dict) -> str:
    cats = list(TARGETS)
    lines = ["| guidance | " + " | ".join(cats) + " | CLIP score | FID (CLIP features) |",
             "|---|" + "---|" * (len(cats) + 2)]
    for key in ("guidance_4", "guidance_4_interval", "guidance_1"):
        if key in res:
            r = res[key]
            below = r.get("guidance_below", 1.0)
            label = f"{r['guidance_scale']:g}" + (f" (at sigma <= {below:g})" if below < 1 else "")
            lines.append(f"| {label} | " + " | ".join(f"{r['geneval'][c]:.3f}" for c in cats)
                         + f" | {r.get('clip_score', float('nan')):.2f} | {r.get('fid_clip', float('nan')):.2f} |")
    lines.append("| target | " + " | ".join(f">= {TARGETS[c]:.2f}" for c in cats) + " | | |")
    if res.get("sweep"):
        lines += ["", "| sampler | 10 steps | 25 steps | 50 steps |", "|---|---|---|---|"]
        for s in dict.fromkeys(r["sampler"] for r in res["sweep"]):
            vals = {r["steps"]: r["overall"] for r in res["sweep"] if r["sampler"] == s}
            lines.append(f"| {LABELS.get(s, s)} | " + " | ".join(f"{vals.get(n, float('nan')):.3f}" for n in (10, 25, 50)) + " |")
    return "\n".join(lines) + "\n"


def run_all(out: Path, steps: int, minutes: float | None, clip_steps: int, per_category: int, sweep_per_category: int,
            model: str | None = None, clip: str | None = None, quick: bool = False,
            parts: tuple[str, ...] = ("tables", "sweep"), guidance_below: float = 1.0) -> dict:
    import lingvis
    from lingvis.data.shapes import generate_shapes
    from lingvis.eval.text_to_image import evaluate_text_to_image

    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}

    def save():
        (out / "results.json").write_text(json.dumps(res, indent=2))
        (out / "results.md").write_text(markdown(res))

    data = out / "shapes"
    if model is None or clip is None:
        if not (data / "captions_train.json").is_file():
            generate_shapes(data, n_train=5000, n_val=200, n_test=200, image_size=32)
    if model is None:
        res["train"] = train_t2i(out, data, steps, minutes)
        model = str(out / "t2i")
        save()
    if clip is None and clip_steps > 0:
        res["clip_train"] = train_clip(out, data, clip_steps)
        clip = str(out / "clip")
        save()
    t2i, tok = lingvis.load(model), lingvis.load_tokenizer(model)
    clip_model, clip_tok = (lingvis.load(clip), lingvis.load_tokenizer(clip)) if clip else (None, None)
    tables = [("guidance_4", 4.0, 1.0), ("guidance_1", 1.0, 1.0)]
    if guidance_below < 1:  # guidance 4 in a limited interval too (lingvis.diffusion.sampling.sample_latents)
        tables.insert(1, ("guidance_4_interval", 4.0, guidance_below))
    for key, g, below in tables if "tables" in parts else ():
        r, cost = _budget(lambda: evaluate_text_to_image(t2i, tok, per_category=per_category, steps=25,
                                                          guidance_scale=g, clip=clip_model, clip_tokenizer=clip_tok,
                                                          n_real=100 if quick else 500, guidance_below=below,
                                                          grid=str(out / f"grid_{key.replace('_', '', 1)}.png")))
        res[key] = {**r, "eval_cost": cost}
        save()
    res["sweep"] = []
    for sampler in sweep_samplers(t2i) if "sweep" in parts else ():
        for n in (10, 25, 50):
            r = evaluate_text_to_image(t2i, tok, per_category=sweep_per_category, steps=n, guidance_scale=4.0,
                                       scheduler=sampler)
            res["sweep"].append({"sampler": sampler, "steps": n, "overall": r["geneval"]["overall"],
                                 **{k: v for k, v in r["geneval"].items() if k != "overall"}})
            save()
    if res["sweep"]:
        sweep_plot(res["sweep"], out / "steps.png")
    res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save()
    return res


def run(quick: bool = False) -> list[dict]:
    """For `benchmarks.run --learning`: the quick variant (minutes, far below the targets)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        res = run_all(Path(tmp), 60 if quick else None, None if quick else 15.0, 100 if quick else 800, 5 if quick else 40,
                      3 if quick else 20, quick=quick)
    g = res["guidance_4"]["geneval"]
    return [{"benchmark": f"t2i shapes {c} (guidance 4)", "lingvis": round(g[c], 3), "reference": t,
             "unit": "accuracy (target)", "ratio": round(g[c] / t, 3)} for c, t in TARGETS.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="results folder (data, runs, results.json/md, grids, steps.png)")
    ap.add_argument("--steps", type=int, help="cap on training steps (default: as many as fit in --minutes)")
    ap.add_argument("--minutes", type=float, default=15.0, help="training budget in CPU minutes of this process")
    ap.add_argument("--clip-steps", type=int, default=800,
                    help="steps of the CLIP used for CLIP score and FID (0: no CLIP score or FID)")
    ap.add_argument("--per-category", type=int, default=40, help="prompts per category (main tables)")
    ap.add_argument("--sweep-per-category", type=int, default=20, help="prompts per category (steps sweep)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on an oversubscribed machine)")
    ap.add_argument("--model", help="evaluate this text-to-image run instead of training one")
    ap.add_argument("--clip", help="use this CLIP run instead of training one")
    ap.add_argument("--parts", default="tables,sweep", help="evaluations to run: tables (guidance 4 and 1), sweep")
    ap.add_argument("--guidance-below", type=float, default=1.0,
                    help="< 1: also the guidance-4 table with guidance only at noise levels sigma <= this")
    ap.add_argument("--quick", action="store_true", help="tiny budgets: checks the script, not the targets")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.quick:
        a.steps, a.clip_steps, a.per_category, a.sweep_per_category = 20, 20, 2, 1
    res = run_all(Path(a.out), a.steps, a.minutes, a.clip_steps, a.per_category, a.sweep_per_category, a.model,
                  a.clip, a.quick, tuple(a.parts.split(",")), a.guidance_below)
    print(markdown(res))


if __name__ == "__main__":
    main()
