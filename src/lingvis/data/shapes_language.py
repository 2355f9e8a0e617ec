"""English captions and question/answer pairs for `Scene`s."""

from __future__ import annotations

import random
from dataclasses import dataclass

from lingvis.data.shapes_scene import (
    COLOURS, HELD_OUT, SHAPES, Scene, ShapeObject, dominant_relation, region, relation,
)

NUMBER_WORDS = {0: "zero", 1: "one", 2: "two", 3: "three"}
REGION_PHRASES = {
    "top left": "in the top left corner", "top right": "in the top right corner",
    "bottom left": "in the bottom left corner", "bottom right": "in the bottom right corner",
    "top": "at the top", "bottom": "at the bottom", "left": "on the left", "right": "on the right",
    "center": "in the center",
}
RELATION_PHRASES = {"left of": "to the left of", "right of": "to the right of",
                    "above": "above", "below": "below"}
# (question_type, answer_type) as in VQAv2's answer_type vocabulary.
ANSWER_TYPES = {"colour": "other", "shape": "other", "count": "number",
                "position": "other", "yes/no": "yes/no"}


@dataclass(frozen=True)
class QA:
    question: str
    answer: str
    question_type: str

    @property
    def answer_type(self) -> str:
        return ANSWER_TYPES[self.question_type]


def article(word: str) -> str:
    """'a' or 'an' for the word that follows."""
    return "an" if word[0] in "aeiou" else "a"


def np_indefinite(o: ShapeObject, with_size: bool = True) -> str:
    """'a small red circle' (or 'an orange star' without the size)."""
    words = f"{o.size} {o.colour} {o.shape}" if with_size else f"{o.colour} {o.shape}"
    return f"{article(words)} {words}"


def join_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def refer(objects: list[ShapeObject], i: int, without: str | None = None) -> str | None:
    """Shortest unique definite description of object i not using attribute `without`."""
    options = [("shape",), ("size", "shape"), ("colour",), ("size", "colour"), ("colour", "shape"),
               ("size", "colour", "shape")]
    target = objects[i]
    for attrs in options:
        if without in attrs:
            continue
        matches = [o for o in objects if all(getattr(o, a) == getattr(target, a) for a in attrs)]
        if len(matches) == 1:
            words = [getattr(target, a) for a in attrs]
            if "shape" not in attrs:
                words.append("object")
            return "the " + " ".join(words)
    return None


def captions(scene: Scene, rng: random.Random, max_relational: int = 2) -> list[str]:
    """Several distinct captions: an object list, relational, counting and location captions."""
    objs = scene.objects
    n = len(objs)
    caps = [join_list([np_indefinite(o) for o in objs])]
    pairs = [(i, j, dominant_relation(objs[i], objs[j])) for i in range(n) for j in range(n) if i != j]
    pairs = [p for p in pairs if p[2] is not None]
    for i, j, rel in rng.sample(pairs, min(max_relational, len(pairs))):
        caps.append(f"{np_indefinite(objs[i])} {RELATION_PHRASES[rel]} {np_indefinite(objs[j])}")
    if n == 1:
        caps.append(f"a single {objs[0].colour} {objs[0].shape} on a white background")
    else:
        names = join_list([np_indefinite(o, with_size=False) for o in objs])
        caps.append(f"{NUMBER_WORDS[n]} shapes: {names}")
    o = rng.choice(objs)
    caps.append(f"{np_indefinite(o)} {REGION_PHRASES[region(o)]}")
    return list(dict.fromkeys(caps))


def _colour_qa(objs: list[ShapeObject], rng: random.Random) -> QA | None:
    options = [(i, ref) for i in range(len(objs)) if (ref := refer(objs, i, without="colour"))]
    if not options:
        return None
    i, ref = rng.choice(options)
    return QA(f"what colour is {ref}?", objs[i].colour, "colour")


def _shape_qa(objs: list[ShapeObject], rng: random.Random) -> QA | None:
    options = [(i, ref) for i in range(len(objs)) if (ref := refer(objs, i, without="shape"))]
    if not options:
        return None
    i, ref = rng.choice(options)
    return QA(f"what shape is {ref}?", objs[i].shape, "shape")


def _count_qa(objs: list[ShapeObject], rng: random.Random) -> QA:
    kind = rng.choice(("all", "colour", "shape"))
    if kind == "colour":
        colour = rng.choice(list(COLOURS))
        count = sum(o.colour == colour for o in objs)
        return QA(f"how many {colour} shapes are there?", str(count), "count")
    if kind == "shape":
        shape = rng.choice(SHAPES)
        count = sum(o.shape == shape for o in objs)
        return QA(f"how many {shape}s are there?", str(count), "count")
    return QA("how many shapes are there?", str(len(objs)), "count")


def _position_qa(objs: list[ShapeObject], rng: random.Random) -> QA:
    if len(objs) == 1:
        return QA(f"where is the {objs[0].colour} {objs[0].shape}?", region(objs[0]), "position")
    i, j = rng.sample(range(len(objs)), 2)
    a, b = objs[i], objs[j]
    rels = relation(a, b)
    ref_a, ref_b = f"the {a.colour} {a.shape}", f"the {b.colour} {b.shape}"
    if not rels:  # centres too close on both axes: fall back to absolute location
        return QA(f"where is {ref_a}?", region(a), "position")
    rel = rng.choice(rels)
    if rel in ("left of", "right of"):
        return QA(f"is {ref_a} to the left or to the right of {ref_b}?", rel.split()[0], "position")
    return QA(f"is {ref_a} above or below {ref_b}?", rel, "position")


def _yes_no_qas(objs: list[ShapeObject], rng: random.Random) -> list[QA]:
    """One 'yes' and one 'no' existence question, plus a relation check when n >= 2."""
    present = {(o.colour, o.shape) for o in objs}
    o = rng.choice(objs)
    qas = [QA(f"is there {np_indefinite(o, with_size=False)}?", "yes", "yes/no")]
    # Negatives never name a held-out pair, so training text never mentions one.
    near = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present
            and (c, s) not in HELD_OUT and (c == o.colour or s == o.shape)]
    c, s = rng.choice(near)
    qas.append(QA(f"is there {article(c)} {c} {s}?", "no", "yes/no"))
    if len(objs) >= 2:
        i, j = rng.sample(range(len(objs)), 2)
        rels = relation(objs[i], objs[j])
        asked = rng.choice(("left of", "right of", "above", "below"))
        phrase = RELATION_PHRASES[asked]
        answer = "yes" if asked in rels else "no"
        qas.append(QA(f"is the {objs[i].colour} {objs[i].shape} {phrase} the "
                      f"{objs[j].colour} {objs[j].shape}?", answer, "yes/no"))
    return qas


def questions(scene: Scene, rng: random.Random) -> list[QA]:
    """Question/answer pairs of every type: colour, shape, count, position, yes/no."""
    objs = scene.objects
    qas = [q for q in (_colour_qa(objs, rng), _shape_qa(objs, rng)) if q is not None]
    qas += [_count_qa(objs, rng), _position_qa(objs, rng), *_yes_no_qas(objs, rng)]
    return qas
