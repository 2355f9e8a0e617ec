"""Does fusion pretraining help VQA? Held-out VQA accuracy by question type with and without VL-BERT-style
pretraining, under the SAME fine-tuning budget (steps, schedule, seed, data), side by side.

- scratch: a fresh `fusion-small` answer classifier fine-tuned for `--steps` steps on the shapes VQA split;
- pretrained: `lingvis pretrain fusion` on the shapes captions of the same training images for
  `--pretrain-steps` steps (masked LM with whole-word masking, image-text matching, masked region features
  with the box geometry kept: `PRETRAIN`), then exactly the same fine-tuning run starting from it.

Scores: official VQA accuracy (overall and per question type) on `test` (unseen scenes) and `test_unseen`
(scenes with held-out colour-shape pairs). Step budgets (not wall-clock budgets) keep the comparison fair on
a shared machine; wall and CPU seconds of each arm are printed beside the scores.

    python -m benchmarks.vqa_pretraining_learning [--quick] [--steps 1500] [--pretrain-steps 1500] [--scenes 4000]
                                                  [--only scratch|pretrained] [--out runs/vqa_pretraining]
                                                  [--readouts pooled,regions] [--seed 1337] [--reuse-pretrain]
    python -m benchmarks.vqa_pretraining_learning --table s1337=runs/a s2=runs/b   # seeds side by side, means

The readout options go in `--overrides`, e.g. subject/object readers and the boxes they read (docs/vqa.md,
"Roles and box geometry"): `--readouts regions --overrides '{"vqa_roles": "order", "vqa_geometry": true}'`.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

BATCH, LR = 32, 5e-4
TYPES = ("colour", "shape", "count", "position", "yes/no")
# FusionPretrainArgs fields: whole-word MLM at 30%, ITM, masked regions (geometry kept); ITC off (it adds two
# unimodal passes per step; `itc=True` to include it)
PRETRAIN = {"mlm_prob": 0.3, "whole_word": True, "mif_prob": 0.3, "itc": False}


def _cfg(steps: int, evals: int = 3, lr_scale: dict | None = None, seed: int = 1337):
    from lingvis.train.config import TrainConfig

    return TrainConfig(max_steps=steps, batch_size=BATCH, lr=LR, warmup_steps=min(100, max(1, steps // 10)),
                       weight_decay=0.05, eval_every=max(50, steps // evals), eval_batches=6, log_every=50,
                       seed=seed, progress=False, lr_scale=lr_scale or {})


def finetune(out: Path, data: Path, steps: int, model: str | None = None, overrides: dict | None = None,
             lr_scale: dict | None = None, seed: int = 1337) -> dict:
    from lingvis.recipes.vqa import VQAFinetuneArgs, finetune_vqa

    return finetune_vqa(VQAFinetuneArgs(out=str(out), data=str(data), model=model, preset="fusion-small",
                                        overrides=dict(overrides or {})), _cfg(steps, lr_scale=lr_scale, seed=seed))


def pretrain(out: Path, data: Path, steps: int, overrides: dict | None = None, seed: int = 1337) -> dict:
    from lingvis.recipes.fusion import FusionPretrainArgs, pretrain_fusion

    args = FusionPretrainArgs(out=str(out), data=str(data), preset="fusion-small", overrides=dict(overrides or {}),
                              **PRETRAIN)
    return pretrain_fusion(args, _cfg(steps, 2, seed=seed))


def position_kind(question: str) -> str:
    """Sub-type of a shapes position question: where (absolute), left/right or above/below (relations)."""
    return "where" if question.startswith("where") else "left/right" if " left or " in question else "above/below"


def position_subtypes(run: Path, data: Path, split: str = "test") -> dict[str, float]:
    """VQA accuracy (%) of the run's best checkpoint on each position sub-type of `split`."""
    from lingvis import api
    from lingvis.data.vqa import annotations_of, read_vqa
    from lingvis.eval.vqa import vqa_evaluate
    from lingvis.tasks.vqa import predict_answers

    examples = [e for e in read_vqa(data, split) if e.question_type == "position"]
    preds = predict_answers(api.load(run), api.load_tokenizer(run), examples)
    out = {}
    for kind in ("where", "left/right", "above/below"):
        sub = [e for e in examples if position_kind(e.question) == kind]
        if sub:
            out[kind] = round(vqa_evaluate({e.question_id: preds[e.question_id] for e in sub},
                                           annotations_of(sub)).overall, 1)
    return out


def _timed(fn, *args, **kw) -> tuple[dict, float, float]:
    w, c = time.perf_counter(), time.process_time()
    res = fn(*args, **kw)
    return res, time.perf_counter() - w, time.process_time() - c


def rows_of(arm: str, summary: dict, wall: float, cpu: float, extra: dict | None = None) -> list[dict]:
    out = []
    for split, res in summary["test"].items():
        out.append({"benchmark": f"VQA accuracy, fusion-small {arm}, shapes {split} ({res['questions']} questions)",
                    "lingvis": round(res["overall"], 2), "reference": None, "unit": "VQA accuracy %",
                    "ratio": None, "arm": arm, "split": split, "finetune_steps": summary["step"],
                    "wall_seconds": round(wall), "cpu_seconds": round(cpu),
                    "per_question_type": {k: round(v, 1) for k, v in res["per_question_type"].items()},
                    **(extra or {})})
    return out


def table(rows: list[dict]) -> str:
    """Question types down, (split, arm) across, with the pretrained-minus-scratch gain of each readout."""
    lines = []
    for split in dict.fromkeys(r["split"] for r in rows):
        by_arm = {r["arm"]: r for r in rows if r["split"] == split}
        arms = list(by_arm)
        pairs = [(a, "pretrained" + a[len("scratch"):]) for a in arms
                 if a.startswith("scratch") and "pretrained" + a[len("scratch"):] in by_arm]
        gains = [f"gain{a[len('scratch'):]}" for a, _ in pairs]
        lines.append(f"{split:<12}" + "".join(f"{a:>20}" for a in [*arms, *gains]))
        for t in (*TYPES, "overall"):
            def val(a):
                return by_arm[a]["lingvis"] if t == "overall" else by_arm[a]["per_question_type"].get(t)

            vals = [val(a) for a in arms]
            cells = "".join(f"{v:>20.1f}" if v is not None else f"{'-':>20}" for v in vals)
            for s_arm, p_arm in pairs:
                a, b = val(s_arm), val(p_arm)
                cells += f"{b - a:>+20.1f}" if None not in (a, b) else f"{'-':>20}"
            lines.append(f"  {t:<10}{cells}")
    return "\n".join(lines)


def load_rows(folder: str | Path) -> list[dict]:
    """The rows a run of this benchmark wrote into `folder` (rows.json, or rows_scratch / rows_pretrained)."""
    files = sorted(Path(folder).glob("rows*.json"))
    if not files:
        raise FileNotFoundError(f"no rows*.json in {folder}: run this benchmark with --out {folder} first")
    return [r for f in files for r in json.loads(f.read_text())]


def seeds_table(runs: dict[str, list[dict]]) -> str:
    """{label (e.g. a seed): rows} -> one table per split: question types and position sub-types down, each
    label's arms across, then the mean over labels of each arm and the mean gain of pretraining."""
    lines = []
    splits = dict.fromkeys(r["split"] for rows in runs.values() for r in rows)
    for split in splits:
        cols = {f"{arm} {label}": r for label, rows in runs.items() for r in rows if r["split"] == split
                for arm in [r["arm"]]}
        arms = list(dict.fromkeys(c.split(" ")[0] for c in cols))
        head = [*cols, *(f"{a} mean" for a in arms)]
        lines.append(f"{split:<14}" + "".join(f" {h:>25}" for h in head))
        keys = [*TYPES, "overall"] + (["where", "left/right", "above/below"] if split == "test" else [])
        for t in keys:
            def val(r):
                if t == "overall":
                    return r["lingvis"]
                if t in TYPES:
                    return r["per_question_type"].get(t)
                return r.get("position_subtypes", {}).get(t)

            vals = [val(r) for r in cols.values()]
            means = []
            for a in arms:
                got = [val(r) for c, r in cols.items() if c.split(" ")[0] == a and val(r) is not None]
                means.append(sum(got) / len(got) if got else None)
            lines.append(f"  {t:<12}" + "".join(f" {v:>25.1f}" if v is not None else f" {'-':>25}"
                                               for v in [*vals, *means]))
    cpu = ", ".join(f"{c}: {r['cpu_seconds']} s CPU / {r['wall_seconds']} s wall"
                    for c, r in {f"{r['arm']} {label}": r for label, rows in runs.items() for r in rows}.items())
    return "\n".join([*lines, f"fine-tuning time: {cpu}"])


def run(quick: bool = False, steps: int | None = None, pretrain_steps: int | None = None,
        out: str | Path = "runs/vqa_pretraining", only: str | None = None, scenes: int | None = None,
        overrides: dict | None = None, lr_scale: dict | None = None,
        readouts: tuple[str, ...] = ("pooled",), seed: int = 1337, reuse_pretrain: bool = False) -> list[dict]:
    """Each arm fine-tuned once per VQA readout (`FusionConfig.vqa_readout`); the pretrained arms share one
    pretraining run (`reuse_pretrain`: the one already in `out/pretrain`, if its summary is there). Arms are named
    `scratch` / `pretrained`, with `+READOUT` for a readout other than pooled. `seed` seeds both stages."""
    from lingvis.recipes.fusion_common import ensure_shapes

    torch.set_num_threads(int(os.environ.get("LINGVIS_THREADS", "2")))
    steps = steps or (60 if quick else 1500)
    pretrain_steps = pretrain_steps if pretrain_steps is not None else (60 if quick else 1500)
    out = Path(out)
    scenes = scenes or (300 if quick else 4000)
    data = ensure_shapes(out / "data", scenes, max(50, scenes // 8))
    rows: list[dict] = []
    base = dict(overrides or {})
    pre_info = None
    for readout in readouts:
        tag = "" if readout == "pooled" else f"+{readout}"
        tuned_over = {**base, "vqa_readout": readout}
        if only in (None, "scratch"):
            run_dir = out / f"scratch{tag}"
            tuned, wall, cpu = _timed(finetune, run_dir, data, steps, None, tuned_over, lr_scale, seed)
            rows += rows_of(f"scratch{tag}", tuned, wall, cpu,
                            {"position_subtypes": position_subtypes(run_dir, data)})
        if only in (None, "pretrained"):
            done = out / "pretrain" / "pretrain_summary.json"
            if pre_info is None and reuse_pretrain and done.exists():
                pre = json.loads(done.read_text())
                pre_info = {"pretrain_steps": pre["step"], "pretrain_wall_seconds": round(pre["seconds"]),
                            "pretrain_cpu_seconds": None, "pretrain_reused": True,
                            "pretrain_eval": {k: round(v, 3) for k, v in pre["eval"].items()
                                              if isinstance(v, (int, float))}}
            if pre_info is None:
                pre, pwall, pcpu = _timed(pretrain, out / "pretrain", data, pretrain_steps, base, seed)
                pre_info = {"pretrain_steps": pre["step"], "pretrain_wall_seconds": round(pwall),
                            "pretrain_cpu_seconds": round(pcpu),
                            "pretrain_eval": {k: round(v, 3) for k, v in pre["eval"].items()
                                              if isinstance(v, (int, float))}}
            run_dir = out / f"pretrained{tag}"
            tuned, wall, cpu = _timed(finetune, run_dir, data, steps, str(out / "pretrain"), tuned_over, lr_scale,
                                      seed)
            rows += rows_of(f"pretrained{tag}", tuned, wall, cpu,
                            {"position_subtypes": position_subtypes(run_dir, data), **pre_info})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny data and 60 steps per stage (a smoke run)")
    p.add_argument("--steps", type=int, help="VQA fine-tuning steps of BOTH arms (default 1500)")
    p.add_argument("--pretrain-steps", type=int, help="fusion pretraining steps of the pretrained arm (default 1500)")
    p.add_argument("--scenes", type=int, help="training scenes (default 4000; held-out splits get 1/8 as many)")
    p.add_argument("--only", choices=["scratch", "pretrained"], help="run one arm (e.g. both side by side)")
    p.add_argument("--out", default="runs/vqa_pretraining", help="run folders, data and rows.json")
    p.add_argument("--overrides", type=json.loads, default={},
                   help='fusion-small config overrides of both arms as JSON, e.g. \'{"pool": "cls"}\'')
    p.add_argument("--readouts", default="pooled",
                   help="VQA readouts to fine-tune each arm with, comma-separated: pooled (ViLT) and/or regions "
                        "(question-conditioned region readings); e.g. pooled,regions")
    p.add_argument("--lr-scale", default="", help="fine-tuning learning-rate multipliers, e.g. vqa_head=5")
    p.add_argument("--seed", type=int, default=1337, help="seed of pretraining and fine-tuning (data stay the same)")
    p.add_argument("--reuse-pretrain", action="store_true",
                   help="start the pretrained arm from OUT/pretrain when a finished pretraining run is there")
    p.add_argument("--table", nargs="+", metavar="LABEL=DIR",
                   help="print the finished runs in DIR (one per seed, e.g. s1337=runs/a s2=runs/b) side by side with "
                   "their means, instead of running")
    a = p.parse_args()
    if a.table:
        print(seeds_table({k: load_rows(v) for k, v in (t.split("=", 1) for t in a.table)}))
        return
    from lingvis.train.config import parse_lr_scale

    rows = run(a.quick, a.steps, a.pretrain_steps, a.out, a.only, a.scenes, a.overrides, parse_lr_scale(a.lr_scale),
               tuple(r.strip() for r in a.readouts.split(",") if r.strip()), a.seed, a.reuse_pretrain)
    for r in rows:
        extra = f"; pretraining {r['pretrain_steps']} steps, {r['pretrain_wall_seconds']} s wall, " \
                f"eval {r['pretrain_eval']}" if "pretrain_steps" in r else ""
        print(f"{r['benchmark']}: {r['lingvis']}% ({r['finetune_steps']} fine-tuning steps, {r['wall_seconds']} s "
              f"wall, {r['cpu_seconds']} s CPU{extra}); position sub-types on test {r['position_subtypes']}",
              flush=True)
    print(table(rows))
    Path(a.out).mkdir(parents=True, exist_ok=True)
    name = f"rows_{a.only}.json" if a.only else "rows.json"
    (Path(a.out) / name).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
