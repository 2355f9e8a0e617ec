"""CLIP learning runs on a CPU, from scratch, within a wall-clock budget (default 10 minutes each):

* shapes: `clip-cnn-shapes` (ResNet image tower; `--preset clip-shapes` for the ViT one) trained on the
  synthetic shapes train split (COCO captions through the regular reader);
  held out: zero-shot accuracy over the 30 colour x shape classes on the test split's single-shape images
  (target >= 90%) and text -> image R@1 on 500 test image/caption pairs with distinct captions (target >= 70%;
  `recipes.shapes_eval.distinct_pairs`: two scenes with the same description make strict R@1 ill-defined).
* digits: scikit-learn's real handwritten digits (8x8, upscaled to 32px) with captions such as "a handwritten
  digit seven" (JSONL through the regular reader); zero-shot accuracy on 20% held-out digits (target >= 90%).

The machine's load average and the process CPU time are printed with the results: on a shared machine the
number of steps reached in the budget varies (and with more runnable processes than cores, `--threads 1`
trains several times faster than 2 threads that wait on each other). `--steps` caps the step count.

    python -m benchmarks.clip_learning [--only shapes|digits] [--minutes 10] [--steps N] [--threads 1] [--quick]

Measured 2026-11-29 on the 2-core machine (quiet apart from one pytest run, --threads 1, --steps 2800,
clip-cnn-shapes): 2718 steps of 64 in the 10-minute budget: zero-shot 100% over the 30 colour x shape classes
(192 single-shape held-out images; 100% on colour x shape pairs never seen in training), text -> image R@1
70.0% strict on 500 distinct-caption pairs (82.2% counting an image the caption also describes), R@5 97.8%,
image -> text R@1 71.4%. With the default 1500-step schedule (289 s): zero-shot 95.8%, R@1 66.2%. Earlier,
under load 5-9: digits 1711 steps in 10 min, zero-shot 96.1%. The default shapes schedule is now 2800 steps.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_TEMPLATES = ("a handwritten digit {}", "a picture of the number {}", "the digit {} written by hand")


def _train(out: Path, data: str, val: str, preset: str, minutes: float, steps: int, batch: int, lr: float,
           overrides: dict | None = None) -> dict:
    from lingvis.recipes.clip import CLIPPretrainArgs, pretrain_clip
    from lingvis.train.config import TrainConfig

    args = CLIPPretrainArgs(out=str(out), data=data, val_data=val, preset=preset, max_val=256,
                            overrides=overrides or {})
    cfg = TrainConfig(max_steps=steps, max_minutes=minutes, batch_size=batch, lr=lr, warmup_steps=50,
                      eval_every=max(steps // 4, 50), eval_batches=2, log_every=20, beta2=0.98, progress=False)
    cpu0, load0 = time.process_time(), os.getloadavg()[0]
    summary = pretrain_clip(args, cfg)
    return {"steps": summary["step"], "seconds": summary["seconds"], "batch": batch, "threads": torch.get_num_threads(),
            "cpu_seconds": round(time.process_time() - cpu0, 1), "load_avg_start": load0,
            "load_avg_end": os.getloadavg()[0]}


def shapes_run(root: Path, minutes: float, steps: int, preset: str, lr: float = 1.5e-3) -> dict:
    import lingvis
    from lingvis.data.shapes import generate_shapes
    from lingvis.recipes.shapes_eval import shapes_retrieval, shapes_zero_shot

    data = root / "shapes"
    generate_shapes(data, n_train=5000, n_val=500, n_test=600, image_size=48)  # 500 distinct-caption pairs
    info = _train(root / "clip-shapes", str(data / "captions_train.json"), str(data / "captions_val.json"),
                  preset, minutes, steps, batch=64, lr=lr)
    model, tok = lingvis.load(root / "clip-shapes"), lingvis.load_tokenizer(root / "clip-shapes")
    with torch.no_grad():
        zs = shapes_zero_shot(model, tok, data)
        unseen = shapes_zero_shot(model, tok, data, "test_unseen")
        ret = shapes_retrieval(model, tok, data, n=500)
    keep = ("t2i_R@1", "t2i_R@1_any", "t2i_R@5", "i2t_R@1", "pairs", "scenes_skipped")
    return {**info, "preset": preset, "zero_shot_top1": zs["top1"], "zero_shot_top5": zs["top5"],
            "zero_shot_images": zs["images"], "unseen_pairs_zero_shot_top1": unseen["top1"],
            **{k: ret[k] for k in keep}}


def write_digits(folder: Path, seed: int = 0) -> tuple[str, str, list[int]]:
    """PNG files (32px RGB) + train/test JSONL with several caption templates; returns test labels."""
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    idx_train, idx_test = train_test_split(list(range(len(d.target))), test_size=0.2, random_state=seed,
                                           stratify=d.target)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(d.images):
        arr = (255 - img * 255 / 16).clip(0, 255).astype("uint8")  # dark ink on white paper
        Image.fromarray(arr).resize((32, 32), Image.Resampling.BILINEAR).convert("RGB").save(folder / "images" / f"{i}.png")
    for name, idx in (("train", idx_train), ("test", idx_test)):
        with open(folder / f"{name}.jsonl", "w") as f:
            for i in idx:
                for t in (DIGIT_TEMPLATES if name == "train" else DIGIT_TEMPLATES[:1]):
                    f.write(json.dumps({"image": f"images/{i}.png", "text": t.format(DIGIT_WORDS[d.target[i]])}) + "\n")
    return str(folder / "train.jsonl"), str(folder / "test.jsonl"), [int(d.target[i]) for i in idx_test]


def digits_run(root: Path, minutes: float, steps: int, preset: str) -> dict:
    import lingvis
    from lingvis.recipes.clip_data import load_groups
    from lingvis.zeroshot import zero_shot_accuracy

    train, test, labels = write_digits(root / "digits")
    size = {"image_size": 32, "patch_size": 4} if "cnn" not in preset else {"image_size": 32}
    info = _train(root / "clip-digits", train, test, preset, minutes, steps, batch=64, lr=2e-3,
                  overrides={"vision": size})
    model, tok = lingvis.load(root / "clip-digits"), lingvis.load_tokenizer(root / "clip-digits")
    groups, _ = load_groups(test)
    with torch.no_grad():
        acc = zero_shot_accuracy(model, tok, [g[0].load() for g in groups], labels, list(DIGIT_WORDS),
                                 [DIGIT_TEMPLATES[0]])
    return {**info, "preset": preset, "zero_shot_top1": acc["top1"], "test_images": len(groups)}


def run(quick: bool = False, minutes: float | None = None, steps: int | None = None,
        only: str | None = None, threads: int = 2, preset: str = "clip-cnn-shapes", lr: float = 1.5e-3) -> list[dict]:
    torch.set_num_threads(threads)
    minutes = minutes or (1.0 if quick else 10.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if only in (None, "shapes"):
            r = shapes_run(Path(tmp), minutes, steps or 2800, preset, lr)  # cosine schedule ends at 2800 steps
            rows += [{"benchmark": "clip shapes zero-shot top-1 (30 classes)", "lingvis": r["zero_shot_top1"],
                      "reference": 0.9, "unit": "accuracy (target)", "ratio": r["zero_shot_top1"] / 0.9, **r},
                     {"benchmark": "clip shapes text->image R@1 (500 pairs)", "lingvis": r["t2i_R@1"],
                      "reference": 0.7, "unit": "recall (target)", "ratio": r["t2i_R@1"] / 0.7}]
        if only in (None, "digits"):
            r = digits_run(Path(tmp), minutes, steps or 100_000, preset)
            rows.append({"benchmark": "clip digits zero-shot top-1 (10 classes)", "lingvis": r["zero_shot_top1"],
                         "reference": 0.9, "unit": "accuracy (target)", "ratio": r["zero_shot_top1"] / 0.9, **r})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 minute per run")
    ap.add_argument("--minutes", type=float, help="wall-clock budget per run (default 10)")
    ap.add_argument("--steps", type=int, help="step cap and cosine-schedule length (default: shapes 2800, digits "
                    "only the time budget)")
    ap.add_argument("--only", choices=["shapes", "digits"])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 is faster on an oversubscribed machine)")
    ap.add_argument("--preset", default="clip-cnn-shapes", help="CLIP preset (e.g. clip-shapes for a ViT tower)")
    ap.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate of the shapes run")
    a = ap.parse_args()
    for r in run(a.quick, a.minutes, a.steps, a.only, a.threads, a.preset, a.lr):
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
