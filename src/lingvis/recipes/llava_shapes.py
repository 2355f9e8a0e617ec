"""The whole LLaVA chain on the built-in shapes world, from nothing, through the regular files and recipes
(shared by `benchmarks/llava_learning.py` and the `lingvis demo llava` step):

1. the shapes files (COCO captions, the LLaVA instruction set, PNG images);
2. the vision tower, trained on the captions: by default the ViT encoder of a captioner (`captioner-tiny`: 64px,
   8 x 8 patches, trained generatively, as in CapPa), or (`tower="clip"`) a CLIP's ViT (contrastive, 48px, 6 x 6
   patches); or (`tower="dense"`) a new ViT (`vit-tiny`) trained on the scenes' ground truth, per patch (the
   shape, colour, size and place of the object there: `recipes.shapes_tower`); and a small GPT on the
   instruction set's text with the images left out (the "pretrained LLM": it
   knows the words and the chat template, not the pictures);
3. stage 1 (projector only, on captions) and stage 2 (projector + LM, on the multi-turn instruction set with
   text-only rows mixed in).
Each stage has a step budget; CPU seconds, wall seconds and the load average are recorded per stage.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..data.llava_json import read_llava_json
from ..data.shapes import generate_shapes
from ..data.shapes_instruct import InstructConfig
from ..data.shapes_regions import write_region_captions
from ..tokenizers.chat import DEFAULT_CHAT_TEMPLATE, render_chat
from ..tokenizers.specials import GPT_SPECIAL_TOKENS
from ..train.config import TrainConfig
from .caption import CaptionArgs, train_captioner
from .clip import CLIPPretrainArgs, pretrain_clip
from .gpt import GPTPretrainArgs, pretrain_gpt
from .llava import LlavaArgs, finetune_llava, pretrain_llava
from .shapes_tower import DenseTowerArgs, tune_tower


@dataclass
class Stage:
    steps: int
    batch: int
    lr: float
    eval_every: int | None = None     # validation loss every so many steps (None: once, at the end)
    max_minutes: float | None = None  # also stop on this wall-clock budget (the schedule spans the steps that fit)


@dataclass
class ShapesPlan:
    n_train: int = 3000               # training scenes
    n_val: int = 100
    n_test: int = 200
    tower: str = "captioner"          # vision tower: "captioner" (ViT of a captioner run), "clip" or "dense"
    clip: Stage = field(default_factory=lambda: Stage(700, 64, 2e-3))
    captioner: Stage = field(default_factory=lambda: Stage(1000, 32, 1e-3))
    lm: Stage = field(default_factory=lambda: Stage(500, 32, 2e-3))
    stage1: Stage = field(default_factory=lambda: Stage(300, 32, 2e-3))
    stage2: Stage = field(default_factory=lambda: Stage(1000, 32, 1e-3))
    dense: Stage = field(default_factory=lambda: Stage(400, 32, 1e-3))  # tower="dense": the ground-truth tuning
    dense_more: Stage | None = None   # tower="dense": a second pass from the first's tower (own warm-up and cosine)
    dense_preset: str = "vit-tiny"    # tower="dense": the new ViT (64px, 8 x 8 patches of 8 px, as the captioner's)
    dense_scenes: int | None = 8000   # tower="dense": training scenes it reads (None: all)
    vision: dict = field(default_factory=lambda: {"patch_size": 8})  # clip-shapes tower: 48px -> 6 x 6 patches
    captioner_preset: str = "captioner-tiny"
    llm: dict = field(default_factory=lambda: dict(n_layer=4, n_head=4, n_embd=128))
    block_size: int = 128
    vocab_size: int = 400
    vision_feature_layer: int | list[int] = -2
    spatial_merge: int = 1            # m x m neighbouring patches -> one image token (lingvis-only)
    # "rowcol": learned row/column embeddings on the image tokens; "onehot": fixed one-hot row/column features at
    # the projector input (lingvis-only)
    image_position: str = "none"
    # stage 1's captions: "all" (the split's captions, as before) or "regions" (one per image naming every object
    # with its 3 x 3 region: `data.shapes_regions`)
    stage1_captions: str = "all"
    train_vision: bool = False        # stage 2 trains the tower too
    # stage 2 first splits the nearly equal embeddings of these word pairs ("left/right,above/below":
    # recipes.split_words; the text-only LM leaves " left" and " right" at cosine 0.78)
    split_words: str | None = None
    split_words_stage: str = "stage2"  # where the split happens: "stage1" (the LM frozen there) or "stage2"
    tower_run: str | None = None      # an existing captioner/CLIP run to take the tower from (none is trained)
    # the instruction set's added relative-position and POPE-contrast turns (plain: none, as measured before)
    instruct: InstructConfig = field(default_factory=InstructConfig.plain)

    def scaled(self, factor: float) -> "ShapesPlan":
        """The same plan with every stage's steps scaled (at least 20)."""
        stages = {k: dataclasses.replace(getattr(self, k), steps=max(20, int(getattr(self, k).steps * factor)))
                  for k in STAGES if getattr(self, k) is not None}
        return dataclasses.replace(self, **stages)


def scale_plan(n_test: int = 200, stage2_minutes: float | None = None) -> ShapesPlan:
    """More scenes and a longer stage 2 (docs/llava.md, "2026-12-07 second session: scale" and the session after):
    16,000 training scenes; the tower a new ViT trained on the scenes' ground truth (`tower="dense"`, 400 steps
    of 32 at lr 1e-3, then 600 more at 2e-3, on 8,000 scenes); the captioner (600 steps) only as the description
    baseline; an LM with context 256 (400 steps of 16: the same tokens per step as 32 x 128) and a 2 x 2 patch
    merge (16 image tokens), so the whole conversation fits (0.3% of them cut, against 85% with 64 image tokens
    in 128); stage 1 150 steps, stage 2 3000 steps of 16 with the validation loss every 250 steps, or what fits
    in `stage2_minutes` of wall time (the schedule then spans the steps that fit).
    Since 2026-12-08 (docs/llava.md, "sixth session"; every target met by this chain from scratch): an LM vocabulary of
    448 (at 400 " above" / " below" are 5 / 4 byte-pair tokens of this text), fixed one-hot row/column projector
    inputs, a stage 1 on region captions, " left"/" right" and " above"/" below" split apart before stage 2, and the
    instruction set `pope-where-why3`: POPE pairs, two "Where is the X?" turns a conversation and relative answers
    that read both objects' 3 x 3 columns (rows) before their conclusion."""
    return ShapesPlan(n_train=16000, n_test=n_test, tower="dense", dense=Stage(400, 32, 1e-3),
                      dense_more=Stage(600, 32, 2e-3), dense_scenes=8000,
                      captioner=Stage(600, 32, 1e-3), lm=Stage(400, 16, 2e-3), block_size=256, spatial_merge=2,
                      vocab_size=448, stage1=Stage(150, 32, 2e-3),
                      stage2=Stage(3000, 16, 1e-3, eval_every=250, max_minutes=stage2_minutes),
                      image_position="onehot", stage1_captions="regions", split_words="left/right,above/below",
                      instruct=InstructConfig(relative_pairs=0, region_turns=2, relative_rationale=3))


def loss_curve(run: Path, window: int = 4) -> list[dict]:
    """Per validation point of a run's metrics.jsonl: the step, the validation loss and the mean of the last
    `window` logged training losses up to that step (one batch each), to see how far the two drift apart."""
    train, out = [], []
    for line in (Path(run) / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        if m.get("split") == "train" and "loss" in m:
            train.append(m["loss"])
        elif m.get("split") == "val" and "loss" in m:
            recent = train[-window:]
            out.append({"step": m["step"], "val_loss": round(m["loss"], 4),
                        "train_loss": round(sum(recent) / len(recent), 4) if recent else None})
    return out


STAGES = ("clip", "captioner", "dense", "dense_more", "lm", "stage1", "stage2")
TOWERS = ("captioner", "clip", "dense")
STAGE1_CAPTIONS = ("all", "regions")


def stage_config(stage: Stage, **kw) -> TrainConfig:
    return TrainConfig(max_steps=stage.steps, batch_size=stage.batch, lr=stage.lr,
                       warmup_steps=min(50, stage.steps // 5), max_minutes=stage.max_minutes,
                       eval_every=min(stage.eval_every or stage.steps, stage.steps), eval_batches=2, log_every=25,
                       weight_decay=0.01, progress=False, **kw)


def timed(name: str, fn, log: dict, echo: bool = True):
    """Run `fn`, recording its CPU and wall seconds and the load average around it in `log[name]`."""
    cpu, wall, load = time.process_time(), time.perf_counter(), os.getloadavg()[0]
    out = fn()
    log[name] = {"cpu_s": round(time.process_time() - cpu, 1), "wall_s": round(time.perf_counter() - wall, 1),
                 "load_start": round(load, 2), "load_end": round(os.getloadavg()[0], 2)}
    if isinstance(out, dict) and "step" in out:
        log[name]["steps"] = out["step"]
    if echo:
        print(f"[{name}] {log[name]}", flush=True)
    return out


def lm_corpus(data: Path) -> Path:
    """The instruction set's conversations as chat-template text without images, plus every caption."""
    out = data / "lm_corpus.jsonl"
    with open(out, "w") as f:
        for conv in read_llava_json(data / "llava_train.json"):
            msgs = [{**m, "content": m["content"].replace("<image>\n", "")} for m in conv.messages]
            f.write(json.dumps({"text": render_chat(DEFAULT_CHAT_TEMPLATE, msgs, False, GPT_SPECIAL_TOKENS)}) + "\n")
        for ann in json.loads((data / "captions_train.json").read_text())["annotations"]:
            f.write(json.dumps({"text": ann["caption"]}) + "\n")
    return out


def check_plan(plan: ShapesPlan) -> None:
    """Clear errors for a plan whose tower, feature layer, split-words stage or stage-1 captions are not known."""
    if plan.tower not in TOWERS:
        raise ValueError(f"ShapesPlan.tower must be one of {TOWERS}, got {plan.tower!r}")
    if plan.tower == "dense" and not isinstance(plan.vision_feature_layer, int):
        raise ValueError("tower='dense' tunes one feature layer: vision_feature_layer must be an int, "
                         f"got {plan.vision_feature_layer!r}")
    if plan.split_words_stage not in ("stage1", "stage2"):
        raise ValueError(f"ShapesPlan.split_words_stage must be 'stage1' or 'stage2', got {plan.split_words_stage!r}")
    if plan.stage1_captions not in STAGE1_CAPTIONS:
        raise ValueError(f"ShapesPlan.stage1_captions must be one of {STAGE1_CAPTIONS}, got {plan.stage1_captions!r}")


def train_chain(out: Path, plan: ShapesPlan, reuse: bool = False, log: dict | None = None) -> dict:
    """Every stage into `out`/{shapes, captioner, clip or dense, lm, stage1, stage2}; with `reuse`, finished runs
    are kept. Returns the per-stage log."""
    check_plan(plan)
    log = {} if log is None else log
    data = out / "shapes"
    done = lambda run: reuse and (out / run / "checkpoints" / "last.json").is_file()  # noqa: E731
    if not (reuse and (data / "llava_test.json").is_file()):
        timed("data", lambda: generate_shapes(data, n_train=plan.n_train, n_val=plan.n_val, n_test=plan.n_test,
                                              n_test_unseen=0, instruct=plan.instruct), log)
    tower = Path(plan.tower_run) if plan.tower_run else out / plan.tower
    if plan.tower_run is None and plan.tower == "captioner" and not done("captioner"):
        timed("captioner", lambda: train_captioner(CaptionArgs(
            out=str(out / "captioner"), data=str(data / "captions_train.json"),
            val_data=str(data / "captions_val.json"), preset=plan.captioner_preset), stage_config(plan.captioner)),
            log)
    if plan.tower_run is None and plan.tower == "clip" and not done("clip"):
        timed("clip", lambda: pretrain_clip(CLIPPretrainArgs(
            out=str(out / "clip"), data=str(data / "captions_train.json"), val_data=str(data / "captions_val.json"),
            preset="clip-shapes", max_val=64, overrides={"vision": plan.vision}), stage_config(plan.clip, beta2=0.98)),
            log)
    # with reuse a finished tower (out/dense) is kept whole: its first pass is not trained again when only the
    # final folder is there (e.g. a tower linked in from another run)
    if plan.tower_run is None and plan.tower == "dense" and not (reuse and (out / "dense" / "dense.json").is_file()):
        passes = [("dense", plan.dense, plan.dense_preset)]
        if plan.dense_more is not None:  # the first pass goes to dense_first, the second reads it
            passes.append(("dense_more", plan.dense_more, str(out / "dense_first")))
        for k, (name, stage, init) in enumerate(passes):
            folder = out / ("dense_first" if k < len(passes) - 1 else "dense")
            if not (reuse and (folder / "dense.json").is_file()):
                timed(name, lambda: tune_tower(DenseTowerArgs(
                    tower=init, data=str(data), out=str(folder), steps=stage.steps, batch=stage.batch, lr=stage.lr,
                    feature_layer=plan.vision_feature_layer, n_scenes=plan.dense_scenes, n_val=plan.n_val)), log)
    if not done("lm"):
        corpus = lm_corpus(data)
        timed("lm", lambda: pretrain_gpt(GPTPretrainArgs(
            out=str(out / "lm"), data=str(corpus), tokenizer="bpe", vocab_size=plan.vocab_size, preset="gpt-micro",
            block_size=plan.block_size, overrides=dict(plan.llm), val_fraction=0.02), stage_config(plan.lm)), log)
    if not done("stage1"):
        captions = {split: data / f"captions_{split}.json" for split in ("train", "val")}
        if plan.stage1_captions == "regions":
            captions = {split: write_region_captions(data, split) for split in captions}
        timed("stage1", lambda: pretrain_llava(LlavaArgs(
            out=str(out / "stage1"), data=str(captions["train"]), val_data=str(captions["val"]),
            vision=str(tower), llm=str(out / "lm"), vision_feature_layer=plan.vision_feature_layer,
            spatial_merge=plan.spatial_merge, image_position=plan.image_position,
            split_words=plan.split_words if plan.split_words_stage == "stage1" else None),
            stage_config(plan.stage1)), log)
    if not done("stage2"):
        timed("stage2", lambda: finetune_llava(LlavaArgs(
            out=str(out / "stage2"), data=str(data / "llava_train.json"), val_data=str(data / "llava_val.json"),
            model=str(out / "stage1"), train_vision=plan.train_vision,
            split_words=plan.split_words if plan.split_words_stage == "stage2" else None),
            stage_config(plan.stage2)), log)
    log["llava_train_cpu_s"] = round(sum(log[k]["cpu_s"] for k in ("stage1", "stage2") if k in log), 1)
    log["all_train_cpu_s"] = round(sum(log[k]["cpu_s"] for k in STAGES if k in log), 1)
    return log
