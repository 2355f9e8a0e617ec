"""The CLIP race: `lingvis pretrain clip` (CLI defaults, on the demo's data and model) against the same model
trained with open_clip's default hyperparameters by a plain PyTorch loop, one after the other in this process,
on the same budget.

Data and model (the demo's clip step): the synthetic shapes scenes (3,000 train, 200 val, 300 test images of
48 px, `generate_shapes` as the demo calls it), the `clip-cnn-shapes` preset (ResNet image tower, small text
transformer) and the word tokenizer the lingvis run trains on the training captions (both sides use it).

lingvis: `lingvis pretrain clip --data captions_train.json --val-data captions_val.json --preset
clip-cnn-shapes --max-minutes M`, every other flag at its default.

Reference: the same lingvis CLIP (built by the recipe's `make_model`, same data pipeline and loss) trained
with open_clip's `main.py` defaults: batch 64, AdamW lr 5e-4, betas (0.9, 0.98), eps 1e-6, weight decay 0.2
on matrices only (open_clip's exclusion: no decay for parameters under 2 dimensions, biases and the logit
scale), cosine to 0 after a linear warmup of 10k steps scaled to the run (open_clip's LAION-400M ViT-B/32
run: 10k of about 400k steps, 2.5%), the learnable logit scale from ln(1/0.07), clamped at ln(100) after each
step, no gradient clipping. Its step horizon is the number of steps that fit in the budget, measured on a
throwaway copy before the run (outside the budget); its periodic evaluations are outside its clock too.

Scores (the demo's scorers, the same for both): zero-shot accuracy over the 30 colour x shape classes on
the test split's single-shape images, text -> image and image -> text R@1 on 300 test pairs with distinct
captions; the curve is the validation mean R@1 (both directions) against time.

    OMP_NUM_THREADS=1 python -m benchmarks.clip_race [--minutes 2] [--clock cpu] [--threads 1]
                                                     [--out runs/clip_race] [--lingvis-args "..."] [--smoke]
                                                     [--reference-from runs/clip_race/clip_race.json]

Measured 2026-12-06 (docs/training.md, "The CLIP race"; 1 thread, CPU clock, 2 CPU minutes each, load 13-25):
lingvis zero-shot 0.766, R@1 t2i 0.722 / i2t 0.708 (246 x 128) vs the reference's 0.745, 0.671 / 0.688
(462 x 64).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import copy
import math
from pathlib import Path

import torch

from benchmarks._race import (
    Clock,
    Side,
    earlier_reference,
    endless,
    finish,
    horizon,
    lingvis_side,
    load,
    open_clip_lr,
    race_args,
)

DEMO_MINUTES = 2.0  # the demo's clip step
PRESET = "clip-cnn-shapes"
OPEN_CLIP = {"batch_size": 64, "lr": 5e-4, "betas": (0.9, 0.98), "eps": 1e-6, "weight_decay": 0.2,
             "warmup_share": 0.025, "max_logit_scale": 100.0}


def shapes_data(folder: Path) -> Path:
    """The demo's shapes set (generated once)."""
    from lingvis.data.shapes import generate_shapes

    if not (folder / "captions_train.json").is_file():
        generate_shapes(folder, n_train=3000, n_val=200, n_test=300, image_size=48)
    return folder


def scores(model, tokenizer, data: Path) -> dict:
    from lingvis.recipes.shapes_eval import shapes_retrieval, shapes_zero_shot

    model.eval()
    zs = shapes_zero_shot(model, tokenizer, data)
    ret = shapes_retrieval(model, tokenizer, data, n=300)
    return {"zero_shot_top1": zs["top1"], "t2i_R@1": ret["t2i_R@1"], "i2t_R@1": ret["i2t_R@1"]}


@torch.no_grad()
def val_r1(task, model, val_batches: list[dict]) -> float:
    """Mean R@1 of both directions over the whole validation set (ContrastiveTask's evaluation)."""
    was = model.training
    model.eval()
    r = task.evaluate(model, val_batches)["mean_R@1"]
    model.train(was)
    return r


def no_decay(name: str, p: torch.Tensor) -> bool:
    """open_clip's exclusion from weight decay (`main.py`): gains, biases, norms and the logit scale."""
    return p.ndim < 2 or "bias" in name or "logit_scale" in name


def run_reference(budget_s: float, tokenizer, data: Path, out: Path, clock: str, evals: int = 8, seed: int = 1337,
                  max_steps: int | None = None) -> Side:
    from lingvis import api
    from lingvis.recipes.clip import CLIPPretrainArgs, make_datasets, make_model
    from lingvis.recipes.clip_data import CaptionedImages, transform_for
    from lingvis.tasks.contrastive import ContrastiveTask

    torch.manual_seed(seed)
    args = CLIPPretrainArgs(out=str(out), data=str(data / "captions_train.json"),
                            val_data=str(data / "captions_val.json"), preset=PRESET)
    train_groups, val_groups, _ = make_datasets(args, seed)
    model = make_model(args, tokenizer).train()
    h = OPEN_CLIP
    train_set = CaptionedImages(train_groups, transform_for(model), seed=seed, cache=True)
    val_set = CaptionedImages(val_groups, transform_for(model), random_caption=False, cache=True)
    task = ContrastiveTask(lambda texts: model.tokenize(tokenizer, texts))
    val_batches = [task.collate([val_set[j] for j in range(i, min(i + 128, len(val_set)))])
                   for i in range(0, len(val_set), 128)]

    def make_opt(m):
        named = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
        return torch.optim.AdamW([{"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0},
                                  {"params": [p for n, p in named if not no_decay(n, p)],
                                   "weight_decay": h["weight_decay"]}], lr=h["lr"], betas=h["betas"], eps=h["eps"])

    def train_step(m, o, batch):
        loss, _ = task.loss(m, batch)
        loss.backward()
        o.step()
        o.zero_grad(set_to_none=True)
        with torch.no_grad():
            m.logit_scale.clamp_(0, math.log(h["max_logit_scale"]))

    opt = make_opt(model)
    loader = torch.utils.data.DataLoader(train_set, batch_size=h["batch_size"], shuffle=True,
                                         collate_fn=task.collate, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    next_batch = endless(loader).__next__  # epochs one after another, reshuffled each time

    with torch.random.fork_rng():  # the horizon, timed on a throwaway copy outside the budget
        probe_model = copy.deepcopy(model)
        probe_opt = make_opt(probe_model)
        probe = iter([task.collate([train_set[j] for j in range(i * 64, i * 64 + 64)]) for i in range(11)])
        total, per_step = horizon(budget_s, lambda: train_step(probe_model, probe_opt, next(probe)), 10, clock)
    if max_steps:
        total = min(total, max_steps)
    side = Side("same CLIP, open_clip default hyperparameters (plain loop)", load_before=load())
    every = max(1, total // evals)
    c = Clock(clock)
    for step in range(total):
        if step % every == 0:
            with c.pause():
                side.curve.append((c(), val_r1(task, model, val_batches)))
        for g in opt.param_groups:
            g["lr"] = open_clip_lr(step, total, h["lr"], h["warmup_share"])
        train_step(model, opt, next_batch())
        if c() >= budget_s:
            total = step + 1
            break
    side.seconds, side.wall, side.cpu, side.steps = c(), c.wall(), c.cpu(), total
    side.curve.append((side.seconds, val_r1(task, model, val_batches)))
    side.load_after = load()
    side.detail = {"horizon": total, "probe_s_per_step": round(per_step, 4), "eval_s_excluded": round(c.paused, 1),
                   "logit_scale": round(float(model.scale().detach()), 2), **h}
    side.scores = scores(model, tokenizer, data)
    api.save(model, out / "model", tokenizer=tokenizer)
    return side


def run_lingvis(minutes: float, data: Path, out: Path, clock: str, extra: list[str], max_steps: int | None) -> Side:
    options = ["--data", str(data / "captions_train.json"), "--val-data", str(data / "captions_val.json"),
               "--preset", PRESET]
    return lingvis_side("pretrain clip", options, minutes, out, clock, extra, max_steps, "mean_R@1")[0]


def main() -> None:
    args, out = race_args(__doc__, "clip_race", "pretrain clip", DEMO_MINUTES, "")
    max_steps = 4 if args.smoke else None

    import lingvis

    data = shapes_data(out / "shapes")
    ours = run_lingvis(args.minutes, data, out / "lingvis", args.clock, args.lingvis_args.split(), max_steps)
    tokenizer = lingvis.api.load_tokenizer(out / "lingvis")
    ours.scores = scores(lingvis.load(out / "lingvis"), tokenizer, data)
    print(ours.report(), flush=True)
    if args.reference_from:
        ref = earlier_reference(args.reference_from)
    else:
        ref = run_reference(args.minutes * 60, tokenizer, data, out / "reference", args.clock, max_steps=max_steps)
    print(ref.report(), flush=True)
    finish(ours, ref, ("zero_shot_top1", "t2i_R@1", "i2t_R@1"), out, "clip_race",
           "validation mean R@1 (both directions)", "CLIP at demo scale: retrieval against time", args.clock)


if __name__ == "__main__":
    main()
