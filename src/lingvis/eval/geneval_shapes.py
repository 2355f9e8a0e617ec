"""GenEval-style compositional prompts for the shapes world, in the wording of the training captions, each
with its check on detected objects: single object, two objects, counting, colours, position and attribute
binding. Held-out (colour, shape) pairs are never asked for."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from ..data.shapes_language import NUMBER_WORDS, RELATION_PHRASES, article
from ..data.shapes_scene import COLOURS, HELD_OUT, RELATIONS, SHAPES, SIZES, Scene, ShapeObject, relation
from .shapes_detector import Detection

CATEGORIES = ("single_object", "two_objects", "counting", "colours", "position", "attribute_binding")
PAIRS = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT]


@dataclass(frozen=True)
class Item:
    category: str
    prompt: str
    check: Callable[[list[Detection]], bool]
    objects: tuple = ()          # the (colour, shape, size) the prompt names, in order
    relation: str | None = None  # position items: objects[0] <relation> objects[1]


def _np(colour: str, shape: str, size: str | None = None) -> str:
    words = f"{size} {colour} {shape}" if size else f"{colour} {shape}"
    return f"{article(words)} {words}"


def _find(dets: list[Detection], colour: str | None, shape: str) -> Detection | None:
    return next((d for d in dets if d.shape == shape and (colour is None or d.colour == colour)), None)


def _distinct(rng: random.Random, n: int, shapes_differ: bool = False, colours_differ: bool = False) -> list:
    while True:
        picks = rng.sample(PAIRS, n)
        if (not shapes_differ or len({s for _, s in picks}) == n) and (
                not colours_differ or len({c for c, _ in picks}) == n):
            return picks


def _sizes(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(tuple(SIZES)) for _ in range(n)]


def single_object(rng):
    (c, s), = _distinct(rng, 1)
    z = _sizes(rng, 1)[0]
    return Item("single_object", _np(c, s, z), lambda d: _find(d, None, s) is not None, ((c, s, z),))


def colours(rng):
    (c, s), = _distinct(rng, 1)
    z = _sizes(rng, 1)[0]
    return Item("colours", _np(c, s, z), lambda d: _find(d, c, s) is not None, ((c, s, z),))


def two_objects(rng):
    (c1, s1), (c2, s2) = _distinct(rng, 2, shapes_differ=True)
    z1, z2 = _sizes(rng, 2)
    return Item("two_objects", f"{_np(c1, s1, z1)} and {_np(c2, s2, z2)}",
                lambda d: _find(d, None, s1) is not None and _find(d, None, s2) is not None,
                ((c1, s1, z1), (c2, s2, z2)))


def counting(rng):
    n = rng.choice((1, 2, 3))
    pairs = _distinct(rng, n)
    if n == 1:
        prompt = f"a single {pairs[0][0]} {pairs[0][1]} on a white background"
    else:
        names = [_np(c, s) for c, s in pairs]
        prompt = f"{NUMBER_WORDS[n]} shapes: " + (", ".join(names[:-1]) + " and " + names[-1])
    return Item("counting", prompt, lambda d: len(d) == n, tuple((c, s, "small") for c, s in pairs))


def position(rng):
    (c1, s1), (c2, s2) = _distinct(rng, 2)
    rel = rng.choice(RELATIONS)
    z1, z2 = _sizes(rng, 2)

    def check(d):
        a, b = _find(d, c1, s1), _find(d, c2, s2)
        return a is not None and b is not None and rel in relation(_obj(a), _obj(b))
    return Item("position", f"{_np(c1, s1, z1)} {RELATION_PHRASES[rel]} {_np(c2, s2, z2)}", check,
                ((c1, s1, z1), (c2, s2, z2)), rel)


def attribute_binding(rng):
    (c1, s1), (c2, s2) = _distinct(rng, 2, shapes_differ=True, colours_differ=True)
    z1, z2 = _sizes(rng, 2)
    return Item("attribute_binding", f"{_np(c1, s1, z1)} and {_np(c2, s2, z2)}",
                lambda d: _find(d, c1, s1) is not None and _find(d, c2, s2) is not None,
                ((c1, s1, z1), (c2, s2, z2)))


def _obj(d: Detection) -> ShapeObject:
    return ShapeObject(d.shape, d.colour, d.size, d.cx, d.cy, d.r)


MAKERS = {"single_object": single_object, "two_objects": two_objects, "counting": counting, "colours": colours,
          "position": position, "attribute_binding": attribute_binding}


def oracle_scene(item: Item) -> Scene:
    """A scene that satisfies `item` (for checking the checks end to end on ground-truth renders)."""
    spots = {None: [(0.25, 0.25), (0.75, 0.3), (0.45, 0.75)], "left of": [(0.22, 0.5), (0.75, 0.5)],
             "right of": [(0.78, 0.5), (0.25, 0.5)], "above": [(0.5, 0.22), (0.5, 0.75)],
             "below": [(0.5, 0.78), (0.5, 0.25)]}[item.relation]
    return Scene([ShapeObject(s, c, z, x, y, SIZES[z]) for (c, s, z), (x, y) in zip(item.objects, spots)])


def make_items(per_category: int, seed: int = 0) -> list[Item]:
    """`per_category` seeded prompts for every category, category-major."""
    if per_category < 1:
        raise ValueError(f"per_category must be >= 1, got {per_category}")
    items = []
    for cat in CATEGORIES:
        rng = random.Random(f"geneval-shapes/{seed}/{cat}")
        items += [MAKERS[cat](rng) for _ in range(per_category)]
    return items
