"""A LLaVA-format instruction set for the shapes scenes: scene descriptions, colours, shapes, counts,
positions (absolute and relative), yes/no questions about objects that are there and objects that are not
(POPE-style: one present and one absent object per scene, so answers are balanced), multi-turn follow-ups
("Is there a star?" ... "Where is it?"), and a few text-only conversations mixed in.

Records are LLaVA conversation JSON: {"id", "image", "conversations": [{"from": "human"|"gpt", "value"}]},
the first human turn starting with "<image>\\n". Each question also carries its scoring key for held-out
evaluation (`Probe`: the key word a free-form answer must contain, and the kind of question).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from lingvis.data.shapes_language import (NUMBER_WORDS, REGION_PHRASES, article, captions, join_list, np_indefinite,
                                          refer)
from lingvis.data.shapes_scene import COLOURS, HELD_OUT, SHAPES, Scene, ShapeObject, region, relation

IMAGE = "<image>\n"
DESCRIBE = ("Describe the image.", "What is in this picture?", "Describe the scene briefly.",
            "What do you see in the image?", "Give a short description of the picture.")
KINDS = ("describe", "colour", "shape", "count", "position", "exists")
# words whose presence makes a free-form answer of that kind ambiguous when they are not the key
CONFLICTS = {
    "colour": tuple(COLOURS), "shape": SHAPES, "count": tuple(NUMBER_WORDS.values()),
    "position": tuple(REGION_PHRASES.values()) + ("left", "right", "above", "below"), "exists": ("yes", "no"),
}
TEXT_ONLY = [
    ("Hello!", "Hello! Show me a picture of shapes and ask me about it."),
    ("What can you do?", "I can describe pictures of shapes and answer questions about their colours, shapes, "
     "counts and positions."),
    ("How many sides does a triangle have?", "A triangle has three sides."),
    ("How many sides does a square have?", "A square has four sides."),
    ("How many points does a star have?", "A star has five points."),
    ("Which colours can the shapes have?", "The shapes can be " + join_list(list(COLOURS)) + "."),
    ("Which shapes do you know?", "I know the " + join_list([s + "s" for s in SHAPES]) + "."),
    ("Is a circle round?", "Yes, a circle is round."),
    ("Is a square round?", "No, a square has four straight sides."),
    ("Thank you!", "You are welcome!"),
]


@dataclass(frozen=True)
class Probe:
    """One question with the key word of its answer (`kind` in KINDS; `relative` for left/right/above/below)."""
    question: str
    answer: str
    kind: str
    key: str
    relative: bool = False


def _name(o: ShapeObject) -> str:
    return f"{o.colour} {o.shape}"


def describe(scene: Scene, rng: random.Random) -> Probe:
    caps = captions(scene, rng)
    return Probe(rng.choice(DESCRIBE), caps[0][0].upper() + caps[0][1:] + ".", "describe", caps[0])


def colour_probe(objs: list[ShapeObject], rng: random.Random) -> Probe | None:
    options = [(i, ref) for i in range(len(objs)) if (ref := refer(objs, i, without="colour"))]
    if not options:
        return None
    i, ref = rng.choice(options)
    return Probe(f"What colour is {ref}?", f"{ref[0].upper()}{ref[1:]} is {objs[i].colour}.", "colour", objs[i].colour)


def shape_probe(objs: list[ShapeObject], rng: random.Random) -> Probe | None:
    options = [(i, ref) for i in range(len(objs)) if (ref := refer(objs, i, without="shape"))]
    if not options:
        return None
    i, ref = rng.choice(options)
    return Probe(f"What shape is {ref}?", f"It is {article(objs[i].shape)} {objs[i].shape}.", "shape", objs[i].shape)


def count_probe(objs: list[ShapeObject], rng: random.Random) -> Probe:
    kind = rng.choice(("all", "all", "colour"))
    if kind == "colour":
        colour = rng.choice(sorted({o.colour for o in objs}) + list(COLOURS)[:2])
        n = sum(o.colour == colour for o in objs)
        word = NUMBER_WORDS[n]
        ans = f"There {'is' if n == 1 else 'are'} {word} {colour} shape{'' if n == 1 else 's'}."
        return Probe(f"How many {colour} shapes are there?", ans, "count", word)
    n = len(objs)
    word = NUMBER_WORDS[n]
    return Probe(rng.choice(("How many shapes are there?", "How many objects are in the picture?")),
                 f"There {'is' if n == 1 else 'are'} {word} shape{'' if n == 1 else 's'}.", "count", word)


def position_probe(objs: list[ShapeObject], rng: random.Random) -> Probe:
    pairs = [(i, j) for i in range(len(objs)) for j in range(len(objs)) if i != j and relation(objs[i], objs[j])]
    if pairs and rng.random() < 0.5:
        i, j = rng.choice(pairs)
        a, b = objs[i], objs[j]
        rel = rng.choice(relation(a, b))
        if rel in ("left of", "right of"):
            q = f"Is the {_name(a)} to the left or to the right of the {_name(b)}?"
            return Probe(q, f"The {_name(a)} is to the {rel.split()[0]} of the {_name(b)}.", "position",
                         rel.split()[0], relative=True)
        q = f"Is the {_name(a)} above or below the {_name(b)}?"
        return Probe(q, f"The {_name(a)} is {rel} the {_name(b)}.", "position", rel, relative=True)
    o = rng.choice(objs)
    phrase = REGION_PHRASES[region(o)]
    return Probe(f"Where is the {_name(o)}?", f"The {_name(o)} is {phrase}.", "position", phrase)


def absent_object(objs: list[ShapeObject], rng: random.Random) -> tuple[str, str]:
    """A (colour, shape) not in the scene: half the time sharing a colour or shape with an object there
    (POPE's adversarial negatives), otherwise any; never a held-out pair."""
    present = {(o.colour, o.shape) for o in objs}
    pool = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present and (c, s) not in HELD_OUT]
    if rng.random() < 0.5:
        near = [(c, s) for c, s in pool if any(c == o.colour or s == o.shape for o in objs)]
        pool = near or pool
    return rng.choice(pool)


def exists_probes(objs: list[ShapeObject], rng: random.Random) -> list[Probe]:
    """One present and one absent object (POPE-style, balanced)."""
    o = rng.choice(objs)
    yes = Probe(f"Is there {article(o.colour)} {_name(o)} in the image?", f"Yes, there is {np_indefinite(o, False)}.",
                "exists", "yes")
    c, s = absent_object(objs, rng)
    no = Probe(f"Is there {article(c)} {c} {s} in the image?", f"No, there is no {c} {s}.", "exists", "no")
    return [yes, no]


def follow_up(objs: list[ShapeObject], rng: random.Random) -> list[Probe]:
    """'Is there a red star?' -> 'Yes ...' -> 'Where is it?' / 'How big is it?' (the answer needs the first turn)."""
    o = rng.choice(objs)
    first = Probe(f"Is there {article(o.shape)} {o.shape} in the image?" if sum(p.shape == o.shape for p in objs) == 1
                  else f"Is there {article(o.colour)} {_name(o)} in the image?",
                  f"Yes, there is {np_indefinite(o, False)}.", "exists", "yes")
    if rng.random() < 0.5:
        phrase = REGION_PHRASES[region(o)]
        second = Probe("Where is it?", f"It is {phrase}.", "position", phrase)
    else:
        second = Probe("What size is it?", f"It is {o.size}.", "size", o.size)
    return [first, second]


def scene_probes(scene: Scene, rng: random.Random) -> list[Probe]:
    """One question of every kind for a scene (two for yes/no: present and absent), in a fixed order."""
    objs = scene.objects
    out = [describe(scene, rng)]
    out += [p for p in (colour_probe(objs, rng), shape_probe(objs, rng)) if p is not None]
    out += [count_probe(objs, rng), position_probe(objs, rng), *exists_probes(objs, rng)]
    return out


def conversation(turns: list[Probe]) -> list[dict]:
    conv = []
    for k, p in enumerate(turns):
        conv.append({"from": "human", "value": (IMAGE if k == 0 else "") + p.question})
        conv.append({"from": "gpt", "value": p.answer})
    return conv


def instruction_records(scenes: list[Scene], images: list[str], seed: int = 0, text_only: float = 0.05,
                        split: str = "train") -> list[dict]:
    """LLaVA-format records: per scene one multi-turn conversation (its questions in random order, sometimes
    a follow-up pair) plus, at rate `text_only`, conversations without an image."""
    rng = random.Random(f"lingvis-shapes-instruct/{seed}/{split}")
    records = []
    for k, (scene, image) in enumerate(zip(scenes, images)):
        probes = scene_probes(scene, rng)
        rng.shuffle(probes)
        turns = probes[:rng.randint(2, len(probes))]
        if rng.random() < 0.4:
            pos = rng.randint(0, len(turns))
            turns[pos:pos] = follow_up(scene.objects, rng)
        records.append({"id": f"{split}-{k}", "image": image, "conversations": conversation(turns)})
        if rng.random() < text_only:
            q, a = rng.choice(TEXT_ONLY)
            records.append({"id": f"{split}-{k}-text", "conversations": [{"from": "human", "value": q},
                                                                         {"from": "gpt", "value": a}]})
    return records
