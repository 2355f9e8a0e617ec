"""Where a shapes LLaVA run's position and POPE answers go wrong, on the held-out scenes of
`benchmarks/llava_learning.py` (the same questions as `evaluate_shapes_chat`, one question per chat):

- relative questions: the (gold, said) counts of left/right/above/below and the accuracy per axis;
- absolute 3 x 3 regions: accuracy, row / column right apart, and per axis the (gold, said) counts of the third
  (top/middle/bottom, left/middle/right: a model that cannot tell left from right says one of them for both);
- POPE's absent objects: how often the model says "yes", by how the absent object relates to its scene (its colour
  on another object, its shape, both, neither).

    python -m benchmarks.llava_diagnose RUN [RUN ...] [--n-test 200] [--full] [--out diag.json]

`--full` also runs the whole `evaluate_shapes_chat` (key word per kind, POPE, CIDEr-D) for each run. CPU seconds
(`time.process_time()`, one thread) are printed with each run.
"""
from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter

import torch

from lingvis.data.shapes_language import REGION_PHRASES
from lingvis.data.shapes_scene import COLOURS, SHAPES

RELATIVE = ("left", "right", "above", "below")
AXIS = {"left": "horizontal", "right": "horizontal", "above": "vertical", "below": "vertical"}
ABSENT = re.compile(rf"Is there an? ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)}) in the image\?")


def absent_relation(colour: str, shape: str, objects) -> str:
    """How an absent (colour, shape) relates to a scene's objects."""
    col = any(o.colour == colour for o in objects)
    shp = any(o.shape == shape for o in objects)
    names = {(True, True): "colour and shape", (True, False): "colour", (False, True): "shape"}
    return names.get((col, shp), "neither")


def _row_col(phrase: str) -> tuple[str, str]:
    return (next((w for w in ("top", "bottom") if w in phrase), "middle"),
            next((w for w in ("left", "right") if w in phrase), "middle"))


def diagnose(model, tok, n: int = 200) -> dict:
    """Position and absent-object answers of `model` on `n` test scenes (see the module doc)."""
    from lingvis.data.shapes import make_split_scenes, render_scene
    from lingvis.recipes.llava_eval import _says_yes_no, answer_chats, keyword_correct, shapes_questions

    items, _ = shapes_questions("test", n)
    scenes = make_split_scenes("test", n)
    chats, probes, owners = [], [], []
    for k, ps, _ in items:
        image = render_scene(scenes[k], 64)
        for p in ps:
            if p.kind == "position" or (p.kind == "exists" and p.key == "no"):
                chats.append(([{"role": "user", "content": "<image>\n" + p.question}], [image]))
                probes.append(p)
                owners.append(k)
    answers = answer_chats(model, tok, chats)
    region_of = {v: k for k, v in REGION_PHRASES.items()}
    rel_said, rel_ok, absolute, said_regions = Counter(), Counter(), Counter(), Counter()
    abs_gold_said = {"row": Counter(), "column": Counter()}
    absent_n, absent_yes = Counter(), Counter()
    for p, a, k in zip(probes, answers, owners):
        text = a.lower()
        if p.kind == "exists":
            colour, shape = ABSENT.match(p.question).groups()
            rel = absent_relation(colour, shape, scenes[k].objects)
            absent_n[rel] += 1
            absent_yes[rel] += _says_yes_no(text) == "yes"
        elif p.relative:
            said = next((w for w in RELATIVE if re.search(rf"\b{w}\b", text)), "?")
            rel_said[f"{p.key}->{said}"] += 1
            rel_ok[AXIS[p.key], keyword_correct(a, p)] += 1
        else:
            absolute[keyword_correct(a, p)] += 1
            said = next((v for v in REGION_PHRASES.values() if v in text), None)
            if said is not None:
                said_regions[said] += 1
                (gr, gc), (sr, sc) = _row_col(region_of[p.key]), _row_col(region_of[said])
                absolute["row", gr == sr] += 1
                absolute["col", gc == sc] += 1
                abs_gold_said["row"][f"{gr}->{sr}"] += 1
                abs_gold_said["column"][f"{gc}->{sc}"] += 1
    pct = lambda ok, bad: round(100 * ok / max(ok + bad, 1), 1)  # noqa: E731
    return {
        "relative": {axis: {"right": rel_ok[axis, True], "n": rel_ok[axis, True] + rel_ok[axis, False],
                            "accuracy": pct(rel_ok[axis, True], rel_ok[axis, False])}
                     for axis in ("horizontal", "vertical")},
        "relative_gold_said": dict(sorted(rel_said.items())),
        "absolute": {"accuracy": pct(absolute[True], absolute[False]), "n": absolute[True] + absolute[False],
                     "row": pct(absolute["row", True], absolute["row", False]),
                     "column": pct(absolute["col", True], absolute["col", False])},
        "absolute_said": dict(said_regions.most_common()),
        "absolute_gold_said": {axis: dict(sorted(c.items())) for axis, c in abs_gold_said.items()},
        "absent_said_yes": {rel: {"yes": absent_yes[rel], "n": absent_n[rel]} for rel in sorted(absent_n)},
    }


def runs_parser(doc: str) -> argparse.ArgumentParser:
    """The scoring scripts' shared command line: run folders, --n-test, --out, --threads."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="llava run folders (or checkpoint folders)")
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--out", default=None, help="write the results here as JSON")
    ap.add_argument("--threads", type=int, default=1)
    return ap


def main() -> None:
    import lingvis
    from lingvis.recipes.llava_eval import evaluate_shapes_chat

    ap = runs_parser(__doc__)
    ap.add_argument("--full", action="store_true", help="also the whole evaluate_shapes_chat per run")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {}
    for run in args.runs:
        cpu = time.process_time()
        model, tok = lingvis.load(run), lingvis.load_tokenizer(run)
        r = {"diagnose": diagnose(model, tok, args.n_test)}
        if args.full:
            full = evaluate_shapes_chat(model, tok, "test", args.n_test)
            r["eval"] = {k: full[k] for k in ("keyword_overall", "position", "per_kind", "pope", "cider",
                                              "description_objects")}
        r["cpu_s"] = round(time.process_time() - cpu, 1)
        out[run] = r
        print(run, json.dumps(r, indent=1, default=str), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2, default=str)


if __name__ == "__main__":
    main()
