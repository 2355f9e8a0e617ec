"""Structured synthetic scenes: 1-3 non-overlapping coloured shapes with spatial relations.

Coordinates are normalised to [0, 1] (x to the right, y downwards) so a scene renders at any size.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import asdict, dataclass, field

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (240, 210, 30),
    "purple": (145, 60, 180),
    "orange": (250, 140, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
SIZES: dict[str, float] = {"small": 0.10, "large": 0.18}  # radius as a fraction of the image side
SIZE_JITTER = 0.01
# (colour, shape) pairs that never occur in train/val/test; every colour and shape still occurs.
HELD_OUT: frozenset[tuple[str, str]] = frozenset({
    ("red", "triangle"), ("green", "star"), ("blue", "circle"),
    ("yellow", "cross"), ("purple", "square"), ("orange", "circle"),
})
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
REL_MARGIN = 0.12  # centres must differ by this much along an axis for a relation to hold
GAP = 0.03  # minimum empty space between two shapes
BORDER = 0.02  # minimum space between a shape and the image border


@dataclass(frozen=True)
class ShapeObject:
    """One shape: centre (cx, cy) and radius r in normalised image coordinates."""

    shape: str
    colour: str
    size: str
    cx: float
    cy: float
    r: float

    @property
    def name(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Triple:
    subject: int
    relation: str
    object: int


@dataclass
class Scene:
    objects: list[ShapeObject]
    triples: list[Triple] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.triples:
            self.triples = scene_relations(self.objects)

    def to_dict(self) -> dict:
        return {
            "objects": [asdict(o) for o in self.objects],
            "triples": [
                {"subject": t.subject, "relation": t.relation, "object": t.object,
                 "text": [self.objects[t.subject].name, t.relation, self.objects[t.object].name]}
                for t in self.triples
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        objects = [ShapeObject(**o) for o in d["objects"]]
        triples = [Triple(t["subject"], t["relation"], t["object"]) for t in d["triples"]]
        return cls(objects, triples)


def relation(a: ShapeObject, b: ShapeObject) -> list[str]:
    """Relations that hold for `a` relative to `b` (possibly one horizontal and one vertical)."""
    rels = []
    if a.cx < b.cx - REL_MARGIN:
        rels.append("left of")
    elif a.cx > b.cx + REL_MARGIN:
        rels.append("right of")
    if a.cy < b.cy - REL_MARGIN:
        rels.append("above")
    elif a.cy > b.cy + REL_MARGIN:
        rels.append("below")
    return rels


def dominant_relation(a: ShapeObject, b: ShapeObject) -> str | None:
    """The relation along the axis where the centres differ most, if it holds."""
    horizontal = abs(a.cx - b.cx) >= abs(a.cy - b.cy)
    for rel in relation(a, b):
        if (rel in ("left of", "right of")) == horizontal:
            return rel
    return None


def scene_relations(objects: list[ShapeObject]) -> list[Triple]:
    return [Triple(i, rel, j) for i, j in itertools.permutations(range(len(objects)), 2)
            for rel in relation(objects[i], objects[j])]


def region(o: ShapeObject) -> str:
    """Coarse location in a 3x3 grid: 'top left', 'top', ..., 'center', ..., 'bottom right'."""
    col = "left" if o.cx < 1 / 3 else "right" if o.cx > 2 / 3 else ""
    row = "top" if o.cy < 1 / 3 else "bottom" if o.cy > 2 / 3 else ""
    return " ".join(p for p in (row, col) if p) or "center"


def is_held_out(colour: str, shape: str) -> bool:
    return (colour, shape) in HELD_OUT


def _overlaps(o: ShapeObject, others: list[ShapeObject]) -> bool:
    return any(math.hypot(o.cx - p.cx, o.cy - p.cy) < o.r + p.r + GAP for p in others)


def _sample_attrs(rng: random.Random, n: int, held_out: str) -> list[tuple[str, str]]:
    """n distinct (colour, shape) pairs; held_out in {'exclude', 'require', 'allow'}."""
    seen = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT]
    unseen = sorted(HELD_OUT)
    everything = [(c, s) for c in COLOURS for s in SHAPES]
    if held_out == "exclude":
        return rng.sample(seen, n)
    if held_out == "allow":
        return rng.sample(everything, n)
    if held_out == "require":
        first = rng.choice(unseen)
        rest = rng.sample([p for p in everything if p != first], n - 1)
        pairs = [first, *rest]
        rng.shuffle(pairs)
        return pairs
    raise ValueError(f"held_out must be 'exclude', 'require' or 'allow', got {held_out!r}")


def make_scene(
    rng: random.Random, min_objects: int = 1, max_objects: int = 3, held_out: str = "exclude",
    max_tries: int = 100,
) -> Scene:
    """Sample a scene of distinct (colour, shape) objects placed without overlap."""
    if not 1 <= min_objects <= max_objects <= 3:
        raise ValueError(f"need 1 <= min_objects <= max_objects <= 3, got {min_objects}, {max_objects}")
    n = rng.randint(min_objects, max_objects)
    for _ in range(max_tries):
        objects: list[ShapeObject] = []
        for colour, shape in _sample_attrs(rng, n, held_out):
            size = rng.choice(tuple(SIZES))
            r = SIZES[size] + rng.uniform(-SIZE_JITTER, SIZE_JITTER)
            for _ in range(50):
                lo, hi = r + BORDER, 1 - r - BORDER
                o = ShapeObject(shape, colour, size, round(rng.uniform(lo, hi), 4),
                                round(rng.uniform(lo, hi), 4), round(r, 4))
                if not _overlaps(o, objects):
                    objects.append(o)
                    break
        if len(objects) == n:
            return Scene(objects)
    raise RuntimeError(f"could not place {n} objects without overlap in {max_tries} tries")
