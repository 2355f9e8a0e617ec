"""Why a shapes LLaVA run's relative-position answers fail (docs/llava.md, 2026-12-07 fifth session): on the held-out
scenes, every ordered pair of objects named apart with a relation on an axis, asked in both orders ("Is the A to the
left or to the right of the B?" and "... the B ... the A?"), and "Where is the X?" for every object named apart, one
question per chat. Counted per axis: relative answers right and the words said, answers that flip when the two
objects swap places, pairs whose two regions the model answers right, and pairs whose regions as the model answers
them imply a relation (right or not) with how often the relative answer follows that implication. With `--grid N`
(a run trained with `InstructConfig.relative_rationale` = N, answers "The A is in column 1 and the B in column 3,
so ..."): per axis, the answers whose two cells parse, each cell read right on the N grid, the two cells in the
true order (different and ordered as the objects), one cell written for both, and answers whose conclusion follows
the order of the cells they wrote (reading vs comparing).

    python -m benchmarks.llava_relative RUN [RUN ...] [--n-test 200] [--grid N] [--out relative.json]
"""
from __future__ import annotations

import json
import re
import time
from collections import Counter

import torch

from lingvis.data.shapes_instruct import OPPOSITE, _name, grid_cell, relative_probe
from lingvis.data.shapes_language import REGION_PHRASES
from lingvis.data.shapes_scene import region, relation

WORDS = ("left", "right", "above", "below")
FLIP = {"left": "right", "right": "left", "above": "below", "below": "above"}
# longest phrase first: "in the top left corner" before "on the left"
PHRASES = sorted(REGION_PHRASES.items(), key=lambda kv: -len(kv[1]))
CELLS = re.compile(r"in (?:column|row) (\d+) and the .+? in (?:column|row) (\d+), so")


def relative_questions(scenes) -> list[tuple]:
    """(kind, scene, i, j, relation, question) rows: "abs" for "Where is the X?" about object i, "rel" for object i
    relative to j whose true answer is `relation`; objects named alike are not asked about."""
    rows = []
    for k, s in enumerate(scenes):
        names = [_name(o) for o in s.objects]
        unique = [i for i, n in enumerate(names) if names.count(n) == 1]
        rows += [("abs", k, i, None, None, f"Where is the {names[i]}?") for i in unique]
        for a in unique:
            for b in unique:
                if a < b:
                    for rel in relation(s.objects[a], s.objects[b]):
                        for x, y, r in ((a, b, rel), (b, a, OPPOSITE[rel])):
                            q = relative_probe(s.objects[x], s.objects[y], r).question
                            rows.append(("rel", k, x, y, r, q))
    return rows


def said_word(answer: str) -> str:
    """The first of left / right / above / below the answer says ("?" for none)."""
    return next((w for w in WORDS if re.search(rf"\b{w}\b", answer.lower())), "?")


def said_region(answer: str) -> str | None:
    text = answer.lower()
    return next((reg for reg, phrase in PHRASES if phrase in text), None)


def _side(reg: str, axis: str) -> int:
    """-1 / 0 / 1 along the axis (left / top = -1)."""
    w = reg.split()
    if axis == "horizontal":
        return -1 if "left" in w else 1 if "right" in w else 0
    return -1 if "top" in w else 1 if "bottom" in w else 0


def rationale_counts(rows: list[tuple], answers: list[str], scenes, grid: int) -> dict:
    """Reading vs comparing in rationale answers (module doc) per axis."""
    c = Counter()
    for (kind, k, x, y, r, _), a in zip(rows, answers):
        m = CELLS.search(a) if kind == "rel" else None
        if m is None:
            continue
        axis = "horizontal" if r in ("left of", "right of") else "vertical"
        coord = (lambda o: o.cx) if axis == "horizontal" else (lambda o: o.cy)
        gold = [grid_cell(coord(scenes[k].objects[o]), grid) for o in (x, y)]
        said = [int(m.group(1)), int(m.group(2))]
        c[axis, "parsed"] += 1
        c[axis, "cells_right"] += sum(s == g for s, g in zip(said, gold))
        c[axis, "same_cell"] += said[0] == said[1]
        c[axis, "order_right"] += said[0] != said[1] and (said[0] < said[1]) == (gold[0] < gold[1])
        if said[0] != said[1]:
            first = "left" if axis == "horizontal" else "above"
            word = said_word(a.split(", so")[-1])
            c[axis, "ordered"] += 1
            c[axis, "follows_cells"] += (word == first) == (said[0] < said[1])
    return {axis: {m: c[axis, m] for m in ("parsed", "cells_right", "same_cell", "order_right", "ordered",
                                           "follows_cells")} for axis in ("horizontal", "vertical")}


def score(rows: list[tuple], answers: list[str], scenes, grid: int = 0) -> dict:
    """The counts of the module doc from the answers to `relative_questions(scenes)` (`grid`: the rationale's)."""
    regions = {(k, i): said_region(a) for (kind, k, i, *_), a in zip(rows, answers) if kind == "abs"}
    rel = {}
    for (kind, k, x, y, r, _), a in zip(rows, answers):
        if kind == "rel":
            rel[k, x, y, r] = said_word(a)
    c, said = Counter(), Counter()
    for (k, x, y, r), word in rel.items():
        axis = "horizontal" if r in ("left of", "right of") else "vertical"
        key = r.split()[0]
        c[axis, "n"] += 1
        c[axis, "right"] += word == key
        said[f"{key}->{word}"] += 1
        c[axis, "swap_flips"] += rel[k, y, x, OPPOSITE[r]] == FLIP.get(word)
        gold = [region(scenes[k].objects[o]) for o in (x, y)]
        if [regions[k, x], regions[k, y]] == gold:
            c[axis, "both_regions_right"] += 1
            c[axis, "both_regions_right_and_relative_right"] += word == key
        if regions[k, x] is not None and regions[k, y] is not None:
            sx, sy = _side(regions[k, x], axis), _side(regions[k, y], axis)
            if sx != sy:
                words = ("left", "right") if axis == "horizontal" else ("above", "below")
                implied = words[0] if sx < sy else words[1]
                c[axis, "implied"] += 1
                c[axis, "implied_right"] += implied == key
                c[axis, "follows_implied"] += word == implied
    gold_regions = {q: region(scenes[q[0]].objects[q[1]]) for q in regions}
    return {"relative": {axis: {m: c[axis, m] for m in ("n", "right", "swap_flips", "both_regions_right",
                                                         "both_regions_right_and_relative_right", "implied",
                                                         "implied_right", "follows_implied")}
                         for axis in ("horizontal", "vertical")},
            "said": dict(sorted(said.items())),
            "absolute": {"right": sum(regions[q] == gold_regions[q] for q in regions), "n": len(regions)},
            **({"rationale": rationale_counts(rows, answers, scenes, grid)} if grid else {})}


def relative_check(model, tok, n: int = 200, grid: int = 0) -> dict:
    from lingvis.data.shapes import make_split_scenes, render_scene
    from lingvis.recipes.llava_eval import answer_chats

    scenes = make_split_scenes("test", n)
    rows = relative_questions(scenes)
    images = [render_scene(s, 64) for s in scenes]
    answers = answer_chats(model, tok, [([{"role": "user", "content": "<image>\n" + q}], [images[k]])
                                        for _, k, *_, q in rows])
    return score(rows, answers, scenes, grid)


def main() -> None:
    import lingvis
    from benchmarks.llava_diagnose import runs_parser

    ap = runs_parser(__doc__)
    ap.add_argument("--grid", type=int, default=0, help="the runs' relative_rationale grid (0: plain answers)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {}
    for run in args.runs:
        cpu = time.process_time()
        r = relative_check(lingvis.load(run), lingvis.load_tokenizer(run), args.n_test, args.grid)
        r["cpu_s"] = round(time.process_time() - cpu, 1)
        out[run] = r
        print(run, json.dumps(r, indent=1), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
