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

from lingvis.data.shapes_language import (
    NUMBER_WORDS,
    REGION_PHRASES,
    RELATION_PHRASES,
    article,
    captions,
    join_list,
    np_indefinite,
    refer,
)
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


def where_probe(o: ShapeObject, cells: bool = False) -> Probe:
    """"Where is the X?" answered with X's 3 x 3 region; with `cells` its column and row on the 3 x 3 grid come first
    ("The X is in column 1 and row 3, in the bottom left corner."), read the way a relative rationale reads them."""
    phrase = REGION_PHRASES[region(o)]
    answer = f"The {_name(o)} is {phrase}."
    if cells:
        answer = f"The {_name(o)} is in column {grid_cell(o.cx, 3)} and row {grid_cell(o.cy, 3)}, {phrase}."
    return Probe(f"Where is the {_name(o)}?", answer, "position", phrase)


def position_probe(objs: list[ShapeObject], rng: random.Random, rationale: int = 0, cells: bool = False) -> Probe:
    """A relative question about two objects with a relation (half the time, when the scene has one; answered with
    `rationale` as in `relative_probe`), else "Where is the X?" answered with X's 3 x 3 region (`where_probe`)."""
    pairs = [(i, j) for i in range(len(objs)) for j in range(len(objs)) if i != j and relation(objs[i], objs[j])]
    if pairs and rng.random() < 0.5:
        i, j = rng.choice(pairs)
        a, b = objs[i], objs[j]
        return relative_probe(a, b, rng.choice(relation(a, b)), rationale)
    return where_probe(rng.choice(objs), cells)


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


def scene_probes(scene: Scene, rng: random.Random, rationale: int = 0, cells: bool = False) -> list[Probe]:
    """One question of every kind for a scene (two for yes/no: present and absent), in a fixed order; `rationale`:
    a relative position answer reads both objects' coordinates first (`relative_probe`); `cells`: so does a
    "Where is the X?" answer (`where_probe`)."""
    objs = scene.objects
    out = [describe(scene, rng)]
    out += [p for p in (colour_probe(objs, rng), shape_probe(objs, rng)) if p is not None]
    out += [count_probe(objs, rng), position_probe(objs, rng, rationale, cells), *exists_probes(objs, rng)]
    return out


def conversation(turns: list[Probe], relative_weight: float = 1.0) -> list[dict]:
    """LLaVA turns of `turns`; with `relative_weight` != 1 each relative answer carries its key word and weight."""
    conv = []
    for k, p in enumerate(turns):
        conv.append({"from": "human", "value": (IMAGE if k == 0 else "") + p.question})
        answer = {"from": "gpt", "value": p.answer}
        if p.relative and relative_weight != 1.0:
            answer.update(key=p.key, weight=relative_weight)
        conv.append(answer)
    return conv


RELATIVE_FORMS = ("word", "yesno")


@dataclass(frozen=True)
class InstructConfig:
    """What the training conversations hold beyond one question of every kind (`scene_probes`).

    `relative_pairs`: relative-position question pairs added per conversation: each asks about two objects in both
    orders ("Is A above or below B?" / "Is B above or below A?"), so its two answers are opposite and the words
    balanced; the axes alternate (vertical / horizontal, random first) while the scene has a relation on them.
    `contrast_pairs`: POPE-style yes/no pairs added per conversation: an absent object sharing its colour (at rate
    `contrast_colour`; else its shape) with a present one, asked beside that present object ("yes").
    `region_turns`: "Where is the X?" turns added per conversation, each about another object of the scene (up to
    its objects named apart), answered with the object's 3 x 3 region: absolute-position supervision per object.
    `relative_chats`: rate per scene of an added short image conversation holding only 1-3 relative-position
    turns (each about another pair of objects named apart or another axis, one order each, so no answer is in the
    history; short, so the context never cuts it); `relative_form` is their question form: "word" ("Is the A to the
    left or to the right of the B?" -> "The A is to the left of the B.") or "yesno" ("Is the A to the left of the
    B?" -> "Yes, the A is to the left of the B." / "No, the A is to the right of the B.", true and false asked
    equally often).
    `relative_weight`: the loss weight of the key word of every relative answer (the LLaVA JSON turn's "weight"
    and "key", `data.llava_inputs.encode_conversation`); 1 writes no weight.
    `relative_rationale`: N > 0: every word-form relative answer first reads both objects' columns (rows) on an
    N x N grid and then concludes ("The A is in column 1 and the B in column 3, so the A is to the left of the
    B."): the LM compares two numbers it has written instead of two places in the image (the answer's key word
    stays its one relative word, and the coordinates hold no rival word, so the key-word score reads it as
    before); 0: the plain answer.
    `region_cells`: every "Where is the X?" answer reads X's column and row on the 3 x 3 grid before its region
    ("The X is in column 1 and row 3, in the bottom left corner."): the reading a 3 x 3 rationale asks for, trained
    on every absolute question (the follow-ups' "Where is it?" keep their form).
    The added turns come from their own random stream, so the rest of each conversation is the same at any
    setting; `InstructConfig.plain()` adds none (the set as it was before 2026-12-07's third session)."""
    text_only: float = 0.05       # rate of text-only conversations mixed in
    follow_up: float = 0.4        # rate of "Is there ...?" -> "Where is it?" / "What size is it?" pairs
    relative_pairs: int = 1
    contrast_pairs: int = 1
    contrast_colour: float = 0.75
    region_turns: int = 0
    relative_chats: float = 0.0
    relative_form: str = "word"
    relative_weight: float = 1.0
    relative_rationale: int = 0
    region_cells: bool = False

    def __post_init__(self):
        for name in ("text_only", "follow_up", "contrast_colour", "relative_chats"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"InstructConfig.{name} is a rate in [0, 1], got {getattr(self, name)!r}")
        for name in ("relative_pairs", "contrast_pairs", "region_turns", "relative_rationale"):
            if getattr(self, name) < 0:
                raise ValueError(f"InstructConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.relative_form not in RELATIVE_FORMS:
            raise ValueError(f"InstructConfig.relative_form must be one of {RELATIVE_FORMS}, "
                             f"got {self.relative_form!r}")
        if not self.relative_weight > 0:
            raise ValueError(f"InstructConfig.relative_weight must be > 0, got {self.relative_weight!r}")

    @classmethod
    def plain(cls) -> "InstructConfig":
        return cls(relative_pairs=0, contrast_pairs=0)


AXES = {"vertical": ("above", "below"), "horizontal": ("left of", "right of")}
OPPOSITE = {"above": "below", "below": "above", "left of": "right of", "right of": "left of"}


def grid_cell(v: float, n: int) -> int:
    """The 1-based cell of normalised coordinate `v` on an axis of `n` cells (columns left to right, rows top down)."""
    return min(n, 1 + int(v * n))


def relative_probe(a: ShapeObject, b: ShapeObject, rel: str, rationale: int = 0) -> Probe:
    """The question whether `a` is left/right of (or above/below) `b`, whose answer is `rel`. With `rationale` = N
    (> 0) the answer first reads both objects' columns (rows) on an N x N grid, then concludes: "The A is in column
    1 and the B in column 3, so the A is to the left of the B." (the comparison is made in the text; objects in
    one cell read the same number and the conclusion comes from the image)."""
    horizontal = rel in ("left of", "right of")
    if horizontal:
        q = f"Is the {_name(a)} to the left or to the right of the {_name(b)}?"
        said, key = f"to the {rel}", rel.split()[0]
    else:
        q, said, key = f"Is the {_name(a)} above or below the {_name(b)}?", rel, rel
    answer = f"The {_name(a)} is {said} the {_name(b)}."
    if rationale:
        axis, ca, cb = ("column", a.cx, b.cx) if horizontal else ("row", a.cy, b.cy)
        answer = (f"The {_name(a)} is in {axis} {grid_cell(ca, rationale)} and the {_name(b)} in {axis} "
                  f"{grid_cell(cb, rationale)}, "
                  f"so the {_name(a)} is {said} the {_name(b)}.")
    return Probe(q, answer, "position", key, relative=True)


def relative_pairs(objs: list[ShapeObject], n: int, rng: random.Random, rationale: int = 0) -> list[Probe]:
    """Up to `n` pairs of relative questions, each about two objects in both orders (answers opposite), the axes
    alternating from a random first one; objects named alike (same colour and shape) are not asked about."""
    names = [_name(o) for o in objs]
    by_axis: dict[str, list[tuple[int, int, str]]] = {axis: [] for axis in AXES}
    for i in range(len(objs)):
        for j in range(i + 1, len(objs)):
            if names[i] == names[j]:
                continue
            for rel in relation(objs[i], objs[j]):
                by_axis["vertical" if rel in AXES["vertical"] else "horizontal"].append((i, j, rel))
    axes = [a for a in rng.sample(list(AXES), 2) if by_axis[a]]
    out: list[Probe] = []
    for k in range(n if axes else 0):
        i, j, rel = rng.choice(by_axis[axes[k % len(axes)]])
        if rng.random() < 0.5:  # which object is named first
            i, j, rel = j, i, OPPOSITE[rel]
        out += [relative_probe(objs[i], objs[j], rel, rationale),
                relative_probe(objs[j], objs[i], OPPOSITE[rel], rationale)]
    return out


def relative_yesno(a: ShapeObject, b: ShapeObject, rel: str, truth: bool) -> Probe:
    """The yes/no question whether `a` is `rel` `b` (true) or the opposite (false); the answer restates the truth."""
    asked = rel if truth else OPPOSITE[rel]
    q = f"Is the {_name(a)} {RELATION_PHRASES[asked]} the {_name(b)}?"
    a_ = f"{'Yes' if truth else 'No'}, the {_name(a)} is {RELATION_PHRASES[rel]} the {_name(b)}."
    return Probe(q, a_, "position", "yes" if truth else "no", relative=True)


def relative_turns(objs: list[ShapeObject], rng: random.Random, form: str = "word",
                   rationale: int = 0) -> list[Probe]:
    """1-3 relative questions, each about another (pair of objects named apart, axis) (one order each, the
    first-named object at random), in `form` ("word" or "yesno", truth balanced); [] without a relation."""
    names = [_name(o) for o in objs]
    triples = [(i, j, rel) for i in range(len(objs)) for j in range(i + 1, len(objs)) if names[i] != names[j]
               for rel in relation(objs[i], objs[j])]
    out = []
    for i, j, rel in rng.sample(triples, min(rng.randint(1, 3), len(triples))):
        if rng.random() < 0.5:
            i, j, rel = j, i, OPPOSITE[rel]
        out.append(relative_probe(objs[i], objs[j], rel, rationale) if form == "word"
                   else relative_yesno(objs[i], objs[j], rel, rng.random() < 0.5))
    return out


def contrast_pairs(objs: list[ShapeObject], n: int, rng: random.Random, colour_rate: float = 0.75) -> list[Probe]:
    """Up to `n` POPE-style pairs: an absent (colour, shape) that shares its colour (at `colour_rate`, else its
    shape) with a present object, and that present object (answer "yes"); never a held-out pair."""
    present = {(o.colour, o.shape) for o in objs}
    out: list[Probe] = []
    for _ in range(n):
        o = rng.choice(objs)
        by_colour = [(o.colour, s) for s in SHAPES]
        by_shape = [(c, o.shape) for c in COLOURS]
        first, second = (by_colour, by_shape) if rng.random() < colour_rate else (by_shape, by_colour)
        for pool in (first, second):
            pool = [p for p in pool if p not in present and p not in HELD_OUT]
            if pool:
                c, s = rng.choice(pool)
                break
        else:
            continue
        yes = Probe(f"Is there {article(o.colour)} {_name(o)} in the image?",
                    f"Yes, there is {np_indefinite(o, False)}.", "exists", "yes")
        no = Probe(f"Is there {article(c)} {c} {s} in the image?", f"No, there is no {c} {s}.", "exists", "no")
        out += [yes, no] if rng.random() < 0.5 else [no, yes]
    return out


def region_turns(objs: list[ShapeObject], n: int, rng: random.Random, cells: bool = False) -> list[Probe]:
    """Up to `n` absolute-position questions ("Where is the red star?" -> its 3 x 3 region), each about a different
    object; objects named alike (same colour and shape) are not asked about."""
    names = [_name(o) for o in objs]
    unique = [o for o, name in zip(objs, names) if names.count(name) == 1]
    return [where_probe(o, cells) for o in rng.sample(unique, min(n, len(unique)))]


def _insert(turns: list[Probe], block: list[Probe], rng: random.Random) -> None:
    """Each probe of `block` at its own random place, in order relative to the others."""
    for p in block:
        turns.insert(rng.randint(0, len(turns)), p)


def instruction_records(scenes: list[Scene], images: list[str], seed: int = 0, text_only: float | None = None,
                        split: str = "train", config: InstructConfig | None = None) -> list[dict]:
    """LLaVA-format records: per scene one multi-turn conversation (its questions in random order, sometimes
    a follow-up pair, the config's relative-position and POPE-contrast pairs at random places) plus, at rate
    `config.text_only`, conversations without an image. `text_only` overrides the config's rate."""
    config = config or InstructConfig()
    rate = config.text_only if text_only is None else text_only
    rng = random.Random(f"lingvis-shapes-instruct/{seed}/{split}")
    extra = random.Random(f"lingvis-shapes-instruct-extra/{seed}/{split}")  # the added turns' own stream
    where = random.Random(f"lingvis-shapes-instruct-where/{seed}/{split}")  # region turns': the rest stays as it was
    short = random.Random(f"lingvis-shapes-instruct-relative/{seed}/{split}")  # the added relative conversations'
    records = []
    for k, (scene, image) in enumerate(zip(scenes, images)):
        probes = scene_probes(scene, rng, config.relative_rationale, config.region_cells)
        rng.shuffle(probes)
        turns = probes[:rng.randint(2, len(probes))]
        if rng.random() < config.follow_up:
            pos = rng.randint(0, len(turns))
            turns[pos:pos] = follow_up(scene.objects, rng)
        _insert(turns, relative_pairs(scene.objects, config.relative_pairs, extra, config.relative_rationale), extra)
        _insert(turns, contrast_pairs(scene.objects, config.contrast_pairs, extra, config.contrast_colour), extra)
        _insert(turns, region_turns(scene.objects, config.region_turns, where, config.region_cells), where)
        records.append({"id": f"{split}-{k}", "image": image,
                        "conversations": conversation(turns, config.relative_weight)})
        if config.relative_chats and short.random() < config.relative_chats:
            rel = relative_turns(scene.objects, short, config.relative_form, config.relative_rationale)
            if rel:
                records.append({"id": f"{split}-{k}-relative", "image": image,
                                "conversations": conversation(rel, config.relative_weight)})
        if rng.random() < rate:
            q, a = rng.choice(TEXT_ONLY)
            records.append({"id": f"{split}-{k}-text", "conversations": [{"from": "human", "value": q},
                                                                         {"from": "gpt", "value": a}]})
    return records
