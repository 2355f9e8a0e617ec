"""Synthetic motion clips whose label depends on temporal order: each class has a partner that is its time
reversal (moving left / right, up / down, appearing / disappearing, a swap in which the large shape moves
right / left, circling clockwise / counter-clockwise, speeding up / slowing down), so a model that pools
frames without order cannot tell the two apart. Positions are normalised to [0, 1] (x right, y down) and
drawn with the shapes renderer (`lingvis.data.shapes_render`)."""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

from PIL import Image

from ..data.shapes_render import render_scene
from ..data.shapes_scene import COLOURS, SHAPES, SIZES, Scene, ShapeObject

# class -> its time reversal
REVERSE = {"move_left": "move_right", "move_right": "move_left", "move_up": "move_down", "move_down": "move_up",
           "appear": "disappear", "disappear": "appear", "swap_large_right": "swap_large_left",
           "swap_large_left": "swap_large_right", "rotate_cw": "rotate_ccw", "rotate_ccw": "rotate_cw",
           "speed_up": "slow_down", "slow_down": "speed_up"}
KINDS = tuple(REVERSE)
SINGLE_KINDS = tuple(k for k in KINDS if not k.startswith("swap"))  # one shape: captions differ only in motion
RADIUS = 0.15  # one moving shape (a fraction of the frame side)
ORBIT_RADIUS = 0.12
MARGIN = 0.02


@dataclass(frozen=True)
class Track:
    """One shape over the clip: position per frame, None where it is not visible."""

    shape: str
    colour: str
    size: str            # "", "small" or "large" (the word used in captions)
    r: float
    points: tuple        # ((cx, cy) | None, ...) one per frame


@dataclass(frozen=True)
class MotionClip:
    kind: str
    tracks: tuple[Track, ...]

    @property
    def num_frames(self) -> int:
        return len(self.tracks[0].points)

    def scene(self, k: int) -> Scene:
        objs = [ShapeObject(t.shape, t.colour, t.size or "large", t.points[k][0], t.points[k][1], t.r)
                for t in self.tracks if t.points[k] is not None]
        return Scene(objs)

    def frames(self, size: int = 32) -> list[Image.Image]:
        return [render_scene(self.scene(k), size) for k in range(self.num_frames)]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "tracks": [asdict(t) for t in self.tracks]}


def _times(n: int) -> list[float]:
    return [k / (n - 1) for k in range(n)]


def _line(rng: random.Random, r: float, length: tuple[float, float]) -> tuple[float, float, float]:
    """(start, end, cross) along an axis for a path of a random length inside the frame, start < end."""
    lo, hi = r + MARGIN, 1 - r - MARGIN
    d = rng.uniform(*length)
    start = rng.uniform(lo, hi - d)
    return start, start + d, rng.uniform(lo, hi)


def _axis_points(u: list[float], kind_dir: str, a: float, b: float, cross: float) -> tuple:
    """Points moving from a to b (a < b) in direction left/right/up/down over progress values u."""
    if kind_dir in ("left", "up"):
        a, b = b, a
    along = [a + (b - a) * p for p in u]
    return tuple((x, cross) if kind_dir in ("left", "right") else (cross, x) for x in along)


def make_motion_clip(kind: str, rng: random.Random, num_frames: int = 16, colour: str | None = None,
                     shape: str | None = None) -> MotionClip:
    """A random clip of class `kind` (colour and shape drawn unless given; swaps draw a second shape)."""
    if kind not in REVERSE:
        raise ValueError(f"unknown motion kind {kind!r}; known: {list(KINDS)}")
    if num_frames < 4:
        raise ValueError(f"motion clips need at least 4 frames, got {num_frames}")
    colour = colour or rng.choice(sorted(COLOURS))
    shape = shape or rng.choice(SHAPES)
    u = _times(num_frames)
    r = RADIUS + rng.uniform(-0.01, 0.01)
    if kind.startswith("move_"):
        a, b, cross = _line(rng, r, (0.4, 0.55))
        return MotionClip(kind, (Track(shape, colour, "", r, _axis_points(u, kind[5:], a, b, cross)),))
    if kind in ("speed_up", "slow_down"):
        a, b, cross = _line(rng, r, (0.45, 0.55))
        progress = [p * p for p in u] if kind == "speed_up" else [1 - (1 - p) ** 2 for p in u]
        direction = rng.choice(("left", "right", "up", "down"))
        return MotionClip(kind, (Track(shape, colour, "", r, _axis_points(progress, direction, a, b, cross)),))
    if kind in ("appear", "disappear"):
        lo, hi = r + MARGIN, 1 - r - MARGIN
        at = (rng.uniform(lo, hi), rng.uniform(lo, hi))
        switch = rng.randint(round(0.3 * (num_frames - 1)), round(0.7 * (num_frames - 1)))
        shown = [k >= switch if kind == "appear" else k < switch for k in range(num_frames)]
        return MotionClip(kind, (Track(shape, colour, "", r, tuple(at if s else None for s in shown)),))
    if kind in ("rotate_cw", "rotate_ccw"):
        r = ORBIT_RADIUS
        radius = rng.uniform(0.26, 0.5 - r - MARGIN - 0.04)
        cx, cy = (0.5 + rng.uniform(-0.03, 0.03) for _ in range(2))
        a0, sweep = rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(220, 300))
        sign = 1 if kind == "rotate_cw" else -1  # y points down: a growing angle turns clockwise on screen
        pts = tuple((cx + radius * math.cos(a0 + sign * sweep * p), cy + radius * math.sin(a0 + sign * sweep * p))
                    for p in u)
        return MotionClip(kind, (Track(shape, colour, "", r, pts),))
    # swaps: a large and a small shape on two rows trade their x positions
    colour2 = rng.choice([c for c in sorted(COLOURS) if c != colour])
    shape2 = rng.choice([s for s in SHAPES if s != shape])
    big, small = SIZES["large"] * 0.9, SIZES["small"] * 1.2
    rows = [rng.uniform(0.24, 0.32), rng.uniform(0.68, 0.76)]
    rng.shuffle(rows)
    left, right = rng.uniform(0.2, 0.28), rng.uniform(0.72, 0.8)
    big_dir = "right" if kind == "swap_large_right" else "left"
    small_dir = "left" if big_dir == "right" else "right"
    return MotionClip(kind, (Track(shape, colour, "large", big, _axis_points(u, big_dir, left, right, rows[0])),
                             Track(shape2, colour2, "small", small, _axis_points(u, small_dir, left, right, rows[1]))))


def motion_clips(n_per_kind: int, seed: int | str = 0, kinds: tuple[str, ...] = KINDS, num_frames: int = 16
                 ) -> list[MotionClip]:
    """`n_per_kind` random clips of every kind, interleaved (kind order repeats), from a seeded generator."""
    rng = random.Random(f"lingvis-motion/{seed}")
    return [make_motion_clip(k, rng, num_frames) for _ in range(n_per_kind) for k in kinds]


def motion_groups(n_groups: int, seed: int | str = 0, kinds: tuple[str, ...] = KINDS, num_frames: int = 16
                  ) -> list[MotionClip]:
    """`n_groups` distinct (colour, shape) pairs, each with one clip of every kind: within a group the
    single-shape captions differ only in the motion (the retrieval test)."""
    pairs = [(c, s) for c in sorted(COLOURS) for s in SHAPES]
    if n_groups > len(pairs):
        raise ValueError(f"at most {len(pairs)} groups (colour x shape pairs), got {n_groups}")
    rng = random.Random(f"lingvis-motion-groups/{seed}")
    rng.shuffle(pairs)
    return [make_motion_clip(k, rng, num_frames, c, s) for c, s in pairs[:n_groups] for k in kinds]
