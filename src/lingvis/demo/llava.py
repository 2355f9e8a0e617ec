"""Demo step: LLaVA-style image chat on the shapes world, from nothing (about 3 minutes on 2 cores): a ViT
CLIP (the vision tower), a small GPT on the instruction text (the LLM), stage 1 (projector) and stage 2
(projector + LM); held-out key-word accuracy, POPE and description CIDEr-D, and a sample dialogue.
The step budgets here are a fifth of `benchmarks/llava_learning.py`'s, so the scores stay below its targets.
The tower is a CLIP's here, not the benchmark's captioner ViT: the two gave the same answers (docs/llava.md) and
the CLIP costs fewer CPU seconds at this budget; the caption step's captioner is not reused because that step
stops on wall time, so under load its tower would be undertrained (43 steps: key word 39.4, CIDEr-D 0.64)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import api, generate
from ..data.shapes import make_split_scenes, render_scene
from ..recipes.llava_eval import evaluate_shapes_chat
from ..recipes.llava_shapes import ShapesPlan, train_chain
from . import step

PLAN = dataclasses.replace(ShapesPlan().scaled(0.2), n_train=1500, n_val=50, n_test=60, tower="clip")
QUESTIONS = ("Describe the image.", "How many shapes are there?", "Where is it?")


def dialogue(run: Path, scene_index: int = 0) -> list[tuple[str, str]]:
    """A three-turn chat about one held-out scene (the third question follows up on the second answer)."""
    model, tok = api.load(run), api.load_tokenizer(run)
    scene = make_split_scenes("test", scene_index + 1)[scene_index]
    image = render_scene(scene, 64)
    obj = scene.objects[0]
    questions = (*QUESTIONS[:2], f"Is there a {obj.colour} {obj.shape} in the image?", QUESTIONS[2])
    history, turns = [], []
    for k, q in enumerate(questions):
        history.append({"role": "user", "content": ("<image>\n" if k == 0 else "") + q})
        prompt = tok.apply_chat_template(history, add_generation_prompt=True)
        room = model.context_length - len(tok.encode(prompt)) - (model.tokens_per_image - 1)
        if room < 8:  # the conversation has filled the model's context
            history.pop()
            break
        answer = generate(model, tok, prompt, max_new_tokens=min(40, room), images=[image]).strip()
        history.append({"role": "assistant", "content": answer})
        turns.append((q, answer))
    image.save(run / "dialogue-image.png")
    return turns


@step("llava")
def demo_llava(out: Path, plan: ShapesPlan = PLAN) -> dict:
    root = out / "llava"
    log = train_chain(root, plan)
    run = root / "stage2"
    model, tok = api.load(run), api.load_tokenizer(run)
    r = evaluate_shapes_chat(model, tok, "test", plan.n_test)
    blind = evaluate_shapes_chat(model, tok, "test", plan.n_test, with_image=False)
    tower = f"took the tower of {plan.tower_run}; trained " if plan.tower_run else \
        f"trained {'captioner' if plan.tower == 'captioner' else 'CLIP'} {log[plan.tower]['steps']}, "
    print(f"\n[llava] {tower}LM {log['lm']['steps']}, stage 1 "
          f"{log['stage1']['steps']} and stage 2 {log['stage2']['steps']} steps "
          f"({log['all_train_cpu_s']:.0f} CPU seconds)")
    print(f"[llava] held-out ({plan.n_test} test scenes, {r['questions']} questions): key-word accuracy "
          f"{r['keyword_overall']:.1f}% (without the image {blind['keyword_overall']:.1f}%), position "
          f"{r['position']:.1f}%, POPE {r['pope']['accuracy']:.1f}% (yes-ratio {r['pope']['yes_ratio']:.0f}%), "
          f"description CIDEr-D {r['cider']:.2f}")
    print("[llava] per question kind: " + ", ".join(f"{k} {v:.0f}%" for k, v in r["per_kind"].items()))
    print(f"[llava] a dialogue about a held-out image ({run / 'dialogue-image.png'}):")
    for q, a in dialogue(run):
        print(f"    user: {q}\n    assistant: {a}")
    print(f"[llava] try: lingvis chat --model {run} --image IMAGE.png")
    return {"keyword": round(r["keyword_overall"], 1), "position": round(r["position"], 1),
            "pope": round(r["pope"]["accuracy"], 1), "cider": round(r["cider"], 3),
            "no_image_keyword": round(blind["keyword_overall"], 1), "cpu_s": log["all_train_cpu_s"], "run": str(run)}
