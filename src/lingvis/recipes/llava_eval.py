"""Held-out evaluation of image chat on the shapes scenes: batched greedy answers to the instruction set's
questions, scored by their key word (free-form answers), POPE-style yes/no metrics on present and absent
objects, and CIDEr-D of scene descriptions against the scenes' reference captions (the captioner's split)."""
from __future__ import annotations

import random
import re
from collections import defaultdict

import torch

from ..data.llava_inputs import IMAGE_TOKEN, chat_prompt_ids, pixel_values
from ..data.shapes import ShapesDataset, make_split_scenes, render_scene
from ..data.shapes_instruct import CONFLICTS, Probe, follow_up, scene_probes
from ..data.shapes_scene import COLOURS, SHAPES, SIZES
from ..generate import pad_left
from ..progress import progress

GROUPS = {**CONFLICTS, "size": tuple(SIZES)}
RELATIVE = ("left", "right", "above", "below")


@torch.inference_mode()
def answer_chats(model, tok, chats: list[tuple[list[dict], list]], max_new_tokens: int = 40,
                 batch_size: int = 32) -> list[str]:
    """Greedy replies to chats [(messages, images)] (messages may hold `<image>` placeholders), batched with
    left padding; each reply is cut at the end-of-turn token. A chat that fills the model's context is an error
    naming both lengths."""
    pad = tok.pad_id if tok.pad_id is not None else (tok.eos_id or 0)
    out: list[str] = []
    for i in progress(range(0, len(chats), batch_size), desc="answer", unit="batch", delay=2, leave=False):
        part = chats[i:i + batch_size]
        prompts = [chat_prompt_ids(tok, model, msgs, len(imgs)) for msgs, imgs in part]
        longest = max(len(p) for p in prompts)
        if longest >= model.context_length:
            raise ValueError(f"a chat of {longest} prompt tokens (image tokens included) leaves no room for an answer "
                             f"in the model's context of {model.context_length} tokens")
        ids, mask = pad_left(prompts, pad)
        device = next(model.parameters()).device
        n = min(max_new_tokens, model.context_length - ids.shape[1])
        pixels = pixel_values(model, [im for _, imgs in part for im in imgs])
        gen = model.generate(ids.to(device), n, pixel_values=pixels, attention_mask=mask.to(device), eos_id=tok.eos_id)
        for row in gen[:, ids.shape[1]:].tolist():
            if tok.eos_id in row:
                row = row[:row.index(tok.eos_id)]
            out.append(tok.decode(row).strip())
    return out


def _has(text: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text) is not None


def _says_yes_no(text: str) -> str | None:
    """'yes' / 'no' when the answer starts with that word ("Not sure" is neither), else None."""
    m = re.match(r"\s*(yes|no)\b", text.lower())
    return m.group(1) if m else None


def keyword_correct(answer: str, probe: Probe) -> bool:
    """The answer holds the probe's key word (yes/no: starts with that word) and no rival of the same kind."""
    text = answer.lower()
    if probe.kind == "exists":
        return _says_yes_no(text) == probe.key
    if probe.kind == "position":
        rivals = RELATIVE if probe.relative else tuple(p for p in GROUPS["position"] if p not in RELATIVE)
    else:
        rivals = GROUPS[probe.kind]
    return _has(text, probe.key) and not any(_has(text, r) for r in rivals if r != probe.key and r not in probe.key)


NAMED = re.compile(rf"\b({'|'.join(COLOURS)})\s+({'|'.join(SHAPES)})(?:e?s)?\b")


def named_objects(text: str) -> set[tuple[str, str]]:
    """The (colour, shape) pairs a description names ("a small red star" -> ("red", "star"))."""
    return set(NAMED.findall(text.lower()))


def object_naming(scenes: list, hyps: dict[int, str]) -> dict:
    """How well descriptions name the objects of their scenes: recall and precision of (colour, shape) pairs,
    and the share of objects whose shape (with any colour) / colour (with any shape) is named."""
    n_obj = n_named = pair_hit = shape_hit = colour_hit = 0
    for k, text in hyps.items():
        named = named_objects(text)
        objs = {(o.colour, o.shape) for o in scenes[k].objects}
        n_obj, n_named = n_obj + len(objs), n_named + len(named)
        pair_hit += len(objs & named)
        shape_hit += sum(any(s == shape for _, s in named) for _, shape in objs)
        colour_hit += sum(any(c == colour for c, _ in named) for colour, _ in objs)
    return {"pair_recall": 100 * pair_hit / max(n_obj, 1), "pair_precision": 100 * pair_hit / max(n_named, 1),
            "shape_recall": 100 * shape_hit / max(n_obj, 1), "colour_recall": 100 * colour_hit / max(n_obj, 1),
            "objects": n_obj}


def pope_metrics(pairs: list[tuple[str, str]]) -> dict:
    """Accuracy, precision, recall, F1 and yes-ratio of (answer, gold yes/no) pairs (POPE's metrics)."""
    said = [_says_yes_no(a) == "yes" for a, _ in pairs]
    gold = [g == "yes" for _, g in pairs]
    tp = sum(s and g for s, g in zip(said, gold))
    fp = sum(s and not g for s, g in zip(said, gold))
    fn = sum(not s and g for s, g in zip(said, gold))
    acc = sum(s == g for s, g in zip(said, gold)) / max(len(pairs), 1)
    prec, rec = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {"accuracy": 100 * acc, "precision": 100 * prec, "recall": 100 * rec,
            "f1": 100 * (2 * prec * rec / max(prec + rec, 1e-9)), "yes_ratio": 100 * sum(said) / max(len(said), 1),
            "n": len(pairs)}


def shapes_questions(split: str, n: int, seed: int = 0) -> tuple[list, list[list[str]]]:
    """[(scene index, probes, follow-up pair)] per held-out scene and the scenes' reference captions."""
    rng = random.Random(f"lingvis-llava-eval/{seed}/{split}")
    scenes = make_split_scenes(split, n, seed)
    refs = ShapesDataset(split, n, seed).captions  # the captioner's references for the same scenes
    return [(k, scene_probes(s, rng), follow_up(s.objects, rng)) for k, s in enumerate(scenes)], refs


def evaluate_shapes_chat(model, tok, split: str = "test", n: int = 200, seed: int = 0, with_image: bool = True,
                         max_new_tokens: int = 40, batch_size: int = 32) -> dict:
    """Key-word accuracy per question kind (and overall, descriptions aside), position accuracy, POPE metrics,
    follow-up accuracy and description CIDEr-D on `n` held-out scenes. `with_image=False` asks the same
    questions without the image (the no-image baseline)."""
    from ..eval.captioning import caption_scores

    items, refs = shapes_questions(split, n, seed)
    scenes = make_split_scenes(split, n, seed)
    chats, probes, owners = [], [], []
    for k, ps, (first, second) in items:
        image = render_scene(scenes[k], 64)
        imgs = [image] if with_image else []
        lead = f"{IMAGE_TOKEN}\n" if with_image else ""
        for p in ps:
            chats.append(([{"role": "user", "content": lead + p.question}], imgs))
            probes.append(p)
            owners.append(k)
        history = [{"role": "user", "content": lead + first.question}, {"role": "assistant", "content": first.answer},
                   {"role": "user", "content": second.question}]
        chats.append((history, imgs))
        probes.append(Probe(second.question, second.answer, "follow_up:" + second.kind, second.key))
        owners.append(k)
    answers = answer_chats(model, tok, chats, max_new_tokens, batch_size)
    per_kind, pope, hyps, examples = defaultdict(list), [], {}, []
    for p, a, k in zip(probes, answers, owners):
        if p.kind == "describe":
            hyps[k] = a or "-"
            continue
        kind = p.kind.split(":")[-1]
        ok = keyword_correct(a, Probe(p.question, p.answer, kind, p.key, p.relative))
        per_kind["follow_up" if p.kind.startswith("follow_up") else p.kind].append(ok)
        if p.kind == "exists":
            pope.append((a, p.key))
        if len(examples) < 12 and k < 2:
            examples.append({"scene": k, "q": p.question, "a": a, "key": p.key, "ok": ok})
    scores = caption_scores({k: refs[k] for k in hyps}, hyps)
    allq = [x for v in per_kind.values() for x in v]
    return {"split": split, "scenes": n, "with_image": with_image,
            "keyword_overall": 100 * sum(allq) / len(allq),
            "per_kind": {k: round(100 * sum(v) / len(v), 1) for k, v in sorted(per_kind.items())},
            "position": 100 * sum(per_kind["position"]) / max(len(per_kind["position"]), 1),
            "pope": pope_metrics(pope), "cider": scores["CIDEr-D"], "bleu4": scores["BLEU-4"],
            "description_objects": object_naming(scenes, hyps),
            "questions": len(allq),
            "descriptions": [{"hyp": hyps[k], "refs": refs[k][:2]} for k in sorted(hyps)[:3]], "examples": examples}
