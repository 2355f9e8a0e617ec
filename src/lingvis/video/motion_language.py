"""Captions (several per clip, the first in a fixed template) and QA pairs for synthetic motion clips."""
from __future__ import annotations

import random

from ..data.shapes_language import article
from .motion import MotionClip

PHRASES = {  # the canonical caption: "a {colour} {shape} {phrase}"
    "move_left": "moving left", "move_right": "moving right", "move_up": "moving up", "move_down": "moving down",
    "appear": "appearing", "disappear": "disappearing", "rotate_cw": "circling clockwise",
    "rotate_ccw": "circling counter-clockwise", "speed_up": "speeding up", "slow_down": "slowing down",
}
PARAPHRASES = {
    "move_left": ("the {o} slides to the left", "{a} travels from right to left"),
    "move_right": ("the {o} slides to the right", "{a} travels from left to right"),
    "move_up": ("the {o} slides upwards", "{a} travels from the bottom to the top"),
    "move_down": ("the {o} slides downwards", "{a} travels from the top to the bottom"),
    "appear": ("{a} pops into view", "the {o} shows up after a moment"),
    "disappear": ("{a} vanishes from view", "the {o} is gone after a moment"),
    "rotate_cw": ("the {o} moves around in a clockwise circle", "{a} orbits clockwise"),
    "rotate_ccw": ("the {o} moves around in a counter-clockwise circle", "{a} orbits counter-clockwise"),
    "speed_up": ("the {o} moves faster and faster", "{a} accelerates"),
    "slow_down": ("the {o} moves slower and slower", "{a} decelerates"),
}
ANSWERS = {"move_left": "left", "move_right": "right", "move_up": "up", "move_down": "down", "appear": "appear",
           "disappear": "disappear", "rotate_cw": "clockwise", "rotate_ccw": "counter-clockwise",
           "speed_up": "speeding up", "slow_down": "slowing down"}


def _np(colour: str, shape: str, size: str = "") -> str:
    words = f"{size} {colour} {shape}".strip()
    return f"{article(words)} {words}"


def captions(clip: MotionClip, rng: random.Random | None = None) -> list[str]:
    """Three captions; the first is the canonical template (clips of a group differ only in its motion)."""
    t = clip.tracks[0]
    o = f"{t.colour} {t.shape}"
    if clip.kind.startswith("swap"):
        s = clip.tracks[1]
        o2 = f"{s.colour} {s.shape}"
        way, other = ("right", "left") if clip.kind == "swap_large_right" else ("left", "right")
        caps = [f"{_np(t.colour, t.shape, 'large')} and {_np(s.colour, s.shape, 'small')} swapping places, "
                f"the {o} moving {way}",
                f"the large {o} moves {way} while the small {o2} moves {other}",
                f"{_np(t.colour, t.shape, 'large')} and {_np(s.colour, s.shape, 'small')} trade places, the {o} "
                f"ending on the {way}"]
    else:
        caps = [f"{_np(t.colour, t.shape)} {PHRASES[clip.kind]}",
                *(p.format(o=o, a=_np(t.colour, t.shape)) for p in PARAPHRASES[clip.kind])]
    if rng is not None:
        rest = caps[1:]
        rng.shuffle(rest)
        caps = caps[:1] + rest
    return caps


def questions(clip: MotionClip) -> list[dict]:
    """[{question, answer, answer_type}]: the motion (order-dependent), then colour / shape / count."""
    t = clip.tracks[0]
    o = f"{t.colour} {t.shape}"
    k = clip.kind
    if k.startswith("swap"):
        s = clip.tracks[1]
        way = "right" if k == "swap_large_right" else "left"
        ends_left = f"{s.colour} {s.shape}" if way == "right" else o
        return [{"question": f"which way does the large {o} move?", "answer": way, "answer_type": "motion"},
                {"question": "which shape ends on the left?", "answer": ends_left, "answer_type": "motion"},
                {"question": f"what colour is the small {s.shape}?", "answer": s.colour, "answer_type": "colour"},
                {"question": "how many shapes are there?", "answer": "two", "answer_type": "number"}]
    if k.startswith("move_"):
        q = f"which way does the {o} move?"
    elif k in ("appear", "disappear"):
        q = f"does the {o} appear or disappear?"
    elif k.startswith("rotate"):
        q = f"does the {o} circle clockwise or counter-clockwise?"
    else:
        q = f"is the {o} speeding up or slowing down?"
    return [{"question": q, "answer": ANSWERS[k], "answer_type": "motion"},
            {"question": f"what colour is the {t.shape}?", "answer": t.colour, "answer_type": "colour"},
            {"question": f"what shape is the {t.colour} object?", "answer": t.shape, "answer_type": "shape"},
            {"question": "how many shapes are there?", "answer": "one", "answer_type": "number"}]
