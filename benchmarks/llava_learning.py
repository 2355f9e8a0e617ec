"""LLaVA-style image chat learned on a CPU from scratch, on the built-in shapes world, through the regular
files and recipes:

1. `lingvis data shapes`-style files (COCO captions, the LLaVA instruction set, PNG images);
2. a CLIP on the captions (its ViT is the vision tower) and a small GPT on the instruction set's text with
   the images left out (the "pretrained LLM": it knows the words and the chat template, not the pictures);
3. stage 1 (`pretrain llava`: projector only, on captions), stage 2 (`finetune llava`: projector + LM, on the
   multi-turn instruction set with text-only rows mixed in);
4. a dedicated captioner (`captioner-tiny`) on the same scenes, for the description baseline.

Held out (the `test` scenes): free-form answers scored by their key word (target >= 85% overall, >= 75% on
position questions), POPE-style yes/no on present and absent objects (balanced; target >= 90% accuracy),
scene descriptions scored with CIDEr-D against the scenes' captions (target: at least the captioner's on the
same scenes, greedy both). Baselines: the stage-1 model (projector only) and the stage-2 model asked without
the image. Every stage has a step budget; CPU seconds, wall seconds and the load average are reported (the
machine is shared: wall time depends on the load, CPU time much less).

    python -m benchmarks.llava_learning [--quick] [--out runs/llava_learning] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

KEYWORD_TARGET, POSITION_TARGET, POPE_TARGET = 85.0, 75.0, 90.0
# (steps, batch, lr) per stage; quick runs use a quarter of the steps
STAGES = {"clip": (700, 64, 2e-3), "lm": (500, 32, 2e-3), "stage1": (300, 32, 2e-3), "stage2": (1000, 32, 1e-3),
          "captioner": (1000, 32, 1e-3)}
LLM = dict(n_layer=4, n_head=4, n_embd=128, block_size=128)
VISION = {"patch_size": 8}  # 48px -> 6 x 6 patch tokens per image


def _cfg(stage: str, quick: bool, **kw):
    from lingvis.train.config import TrainConfig

    steps, batch, lr = STAGES[stage]
    steps = max(steps // 4, 20) if quick else steps
    return TrainConfig(max_steps=steps, batch_size=batch, lr=lr, warmup_steps=min(50, steps // 5),
                       eval_every=steps, eval_batches=2, log_every=25, weight_decay=0.01, progress=False, **kw)


def _timed(name: str, fn, log: dict):
    cpu, wall, load = time.process_time(), time.perf_counter(), os.getloadavg()[0]
    out = fn()
    log[name] = {"cpu_s": round(time.process_time() - cpu, 1), "wall_s": round(time.perf_counter() - wall, 1),
                 "load_start": round(load, 2), "load_end": round(os.getloadavg()[0], 2)}
    if isinstance(out, dict) and "step" in out:
        log[name]["steps"] = out["step"]
    print(f"[{name}] {log[name]}", flush=True)
    return out


def lm_corpus(data: Path) -> Path:
    """The instruction set's conversations as chat-template text without images, plus every caption."""
    from lingvis.data.llava_json import read_llava_json
    from lingvis.tokenizers.chat import DEFAULT_CHAT_TEMPLATE, render_chat
    from lingvis.tokenizers.specials import GPT_SPECIAL_TOKENS

    out = data / "lm_corpus.jsonl"
    with open(out, "w") as f:
        for conv in read_llava_json(data / "llava_train.json"):
            msgs = [{**m, "content": m["content"].replace("<image>\n", "")} for m in conv.messages]
            f.write(json.dumps({"text": render_chat(DEFAULT_CHAT_TEMPLATE, msgs, False, GPT_SPECIAL_TOKENS)}) + "\n")
        for ann in json.loads((data / "captions_train.json").read_text())["annotations"]:
            f.write(json.dumps({"text": ann["caption"]}) + "\n")
    return out


def run(out: Path, quick: bool = False, n_test: int = 200, reuse: bool = False) -> dict:
    import lingvis
    from lingvis.data.shapes import generate_shapes
    from lingvis.recipes.caption import CaptionArgs, evaluate_captions, shapes_split, train_captioner
    from lingvis.recipes.clip import CLIPPretrainArgs, pretrain_clip
    from lingvis.recipes.gpt import GPTPretrainArgs, pretrain_gpt
    from lingvis.recipes.llava import LlavaArgs, finetune_llava, pretrain_llava
    from lingvis.recipes.llava_eval import evaluate_shapes_chat

    log: dict = {"threads": torch.get_num_threads(), "quick": quick}
    data = out / "shapes"
    n_train = 1000 if quick else 3000
    done = lambda run: reuse and (out / run / "checkpoints" / "last.json").is_file()  # noqa: E731
    if not (reuse and (data / "llava_test.json").is_file()):
        _timed("data", lambda: generate_shapes(data, n_train=n_train, n_val=100, n_test=n_test, n_test_unseen=0),
               log)
    if not done("clip"):
        _timed("clip", lambda: pretrain_clip(CLIPPretrainArgs(
            out=str(out / "clip"), data=str(data / "captions_train.json"), val_data=str(data / "captions_val.json"),
            preset="clip-shapes", max_val=64, overrides={"vision": VISION}), _cfg("clip", quick, beta2=0.98)), log)
    if not done("lm"):
        corpus = lm_corpus(data)
        _timed("lm", lambda: pretrain_gpt(GPTPretrainArgs(
            out=str(out / "lm"), data=str(corpus), tokenizer="bpe", vocab_size=400, preset="gpt-micro",
            block_size=LLM["block_size"], overrides={k: v for k, v in LLM.items() if k != "block_size"},
            val_fraction=0.02), _cfg("lm", quick)), log)
    if not done("stage1"):
        _timed("stage1", lambda: pretrain_llava(LlavaArgs(
            out=str(out / "stage1"), data=str(data / "captions_train.json"), val_data=str(data / "captions_val.json"),
            vision=str(out / "clip"), llm=str(out / "lm")), _cfg("stage1", quick)), log)
    if not done("stage2"):
        _timed("stage2", lambda: finetune_llava(LlavaArgs(
            out=str(out / "stage2"), data=str(data / "llava_train.json"), val_data=str(data / "llava_val.json"),
            model=str(out / "stage1")), _cfg("stage2", quick)), log)
    if not done("captioner"):
        _timed("captioner", lambda: train_captioner(CaptionArgs(
            out=str(out / "captioner"), data=str(data / "captions_train.json"),
            val_data=str(data / "captions_val.json"), preset="captioner-tiny"), _cfg("captioner", quick)), log)
    training = [k for k in ("stage1", "stage2") if k in log]
    log["llava_train_cpu_s"] = sum(log[k]["cpu_s"] for k in training)
    log["all_train_cpu_s"] = sum(log[k]["cpu_s"] for k in ("clip", "lm", "stage1", "stage2") if k in log)

    results = {}
    for name, run_dir, with_image in (("stage2", "stage2", True), ("stage2_no_image", "stage2", False),
                                      ("stage1_only", "stage1", True)):
        model, tok = lingvis.load(out / run_dir), lingvis.load_tokenizer(out / run_dir)
        results[name] = _timed(f"eval {name}", lambda: evaluate_shapes_chat(model, tok, "test", n_test,
                                                                            with_image=with_image), log)
    cap_model, cap_tok = lingvis.load(out / "captioner"), lingvis.load_tokenizer(out / "captioner")
    results["captioner"] = evaluate_captions(cap_model, cap_tok, shapes_split("test", n_test), num_beams=1)
    return {"log": log, "results": results}


def report(r: dict) -> list[dict]:
    res = r["results"]
    s2, cap = res["stage2"], res["captioner"]
    rows = [
        ("keyword accuracy, all free-form answers", s2["keyword_overall"], KEYWORD_TARGET, "keyword_overall"),
        ("keyword accuracy, position questions", s2["position"], POSITION_TARGET, "position"),
        ("POPE accuracy (present/absent objects, balanced)", s2["pope"]["accuracy"], POPE_TARGET, None),
        ("description CIDEr-D vs the captioner's", s2["cider"], cap["cider"], "cider"),
    ]
    out = []
    for name, value, target, key in rows:
        base = {b: (res[b]["pope"]["accuracy"] if key is None else res[b][key]) for b in ("stage1_only", "stage2_no_image")}
        out.append({"benchmark": f"llava shapes test: {name}", "lingvis": round(value, 3), "reference": round(target, 3),
                    "ratio": round(value / max(target, 1e-9), 3), **{k: round(v, 3) for k, v in base.items()}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a quarter of the steps on a third of the scenes")
    ap.add_argument("--out", default="runs/llava_learning", help="run folders and results.json")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is best on a busy shared machine)")
    ap.add_argument("--n-test", type=int, default=200, help="held-out test scenes")
    ap.add_argument("--reuse", action="store_true", help="keep finished runs in --out and only run what is missing")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    r = run(out, args.quick, args.n_test, args.reuse)
    rows = report(r)
    (out / "results.json").write_text(json.dumps({**r, "rows": rows}, indent=2, default=str))
    for row in rows:
        print(f"{row['benchmark']}: {row['lingvis']} vs target {row['reference']} -> ratio {row['ratio']:.2f} "
              f"(stage-1 only {row['stage1_only']}, no image {row['stage2_no_image']})", flush=True)
    s2 = r["results"]["stage2"]
    print("per kind:", s2["per_kind"], "POPE:", {k: round(v, 1) for k, v in s2["pope"].items()})
    print("descriptions:", s2["descriptions"][:2])
    print("CPU seconds:", {k: v["cpu_s"] for k, v in r["log"].items() if isinstance(v, dict) and "cpu_s" in v})


if __name__ == "__main__":
    main()
