"""Demo step: VQA on synthetic shapes with a single-stream fusion model (about 2 minutes on 2 cores):
held-out accuracy per question type (seen and unseen colour-shape combinations) and a few answered images."""
from __future__ import annotations

from pathlib import Path

from .. import api
from ..data.vqa import read_vqa
from ..recipes.fusion_common import ensure_shapes
from ..recipes.vqa import VQAFinetuneArgs, finetune_vqa
from ..tasks.vqa import answer_questions
from ..train.config import TrainConfig
from . import step


def _print_scores(summary: dict) -> None:
    for split, res in summary["test"].items():
        types = ", ".join(f"{k} {v:.1f}" for k, v in sorted(res["per_question_type"].items()))
        print(f"[vqa] {split:<11} VQA accuracy {res['overall']:5.1f}% over {res['questions']} questions ({types})")


def _show_examples(run: Path, data: Path, n_images: int = 3) -> None:
    model, tok = api.load(run), api.load_tokenizer(run)
    examples = read_vqa(data, "test_unseen")
    images = list(dict.fromkeys(e.image for e in examples))[:n_images]
    for image in images:
        qs = [e for e in examples if e.image == image]
        print(f"--- {image.name} ---")
        for e, ans in zip(qs, answer_questions(model, tok, image, [e.question for e in qs])):
            mark = "ok" if ans[0][0] == e.answers[0] else f"gold: {e.answers[0]}"
            print(f"  Q: {e.question:<55} A: {ans[0][0]:<12} ({mark})")


@step("vqa")
def demo_vqa(out: Path, minutes: float = 1.6) -> dict:
    run = out / "vqa"
    data = ensure_shapes(out / "shapes", n_train=1500, n_eval=150)
    args = VQAFinetuneArgs(out=str(run), data=str(data), preset="fusion-small")
    cfg = TrainConfig(max_steps=700, max_minutes=minutes, batch_size=32, lr=5e-4, warmup_steps=50,
                      eval_every=200, eval_batches=4, log_every=20, seed=1337, weight_decay=0.05)
    summary = finetune_vqa(args, cfg)
    print(f"\n[vqa] trained {summary['step']} steps in {summary['seconds']:.0f}s on {summary['train_questions']} "
          f"questions; {summary['answers']} answers")
    _print_scores(summary)
    _show_examples(run, data)
    print(f"[vqa] run folder: {run} (checkpoints/, metrics.jsonl, loss.png); try: lingvis vqa --model {run} "
          f"--image IMAGE --question 'what shape is the red object?'")
    return {"test": summary["test"]["test"]["overall"], "test_unseen": summary["test"]["test_unseen"]["overall"],
            "steps": summary["step"], "run": str(run)}
