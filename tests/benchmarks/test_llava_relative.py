"""The relative-position check: gold answers are right, flip on every swap, and follow their own regions; a constant
word per axis is right about half the time and never flips; rationale answers are parsed into reading and comparing."""
import re

from benchmarks import llava_relative as rel
from lingvis.data.shapes import make_split_scenes
from lingvis.data.shapes_instruct import relative_probe
from lingvis.data.shapes_language import REGION_PHRASES
from lingvis.data.shapes_scene import region


def _answers(rows, scenes, word=None):
    out = []
    for kind, k, i, j, r, _ in rows:
        if kind == "abs":
            out.append(f"It is {REGION_PHRASES[region(scenes[k].objects[i])]}.")
        else:
            out.append(f"It is {word or r.split()[0]} it." if r in ("left of", "right of") or word is None
                       else f"It is {'below' if word else r} it.")
    return out


def test_gold_and_constant_answers():
    scenes = make_split_scenes("test", 40)
    rows = rel.relative_questions(scenes)
    gold = rel.score(rows, _answers(rows, scenes), scenes)
    assert gold["absolute"]["right"] == gold["absolute"]["n"] > 0
    for axis in ("horizontal", "vertical"):
        g = gold["relative"][axis]
        assert g["n"] > 0 and g["right"] == g["swap_flips"] == g["both_regions_right"] == g["n"]
        assert g["implied_right"] == g["follows_implied"] == g["implied"] <= g["n"]
    const = rel.score(rows, _answers(rows, scenes, word="left"), scenes)
    h, v = const["relative"]["horizontal"], const["relative"]["vertical"]
    assert h["swap_flips"] == v["swap_flips"] == 0 and h["right"] == h["n"] // 2 and v["right"] == v["n"] // 2
    assert set(const["said"]) <= {"left->left", "right->left", "above->below", "below->below"}
    assert rel.said_region("The star is in the top left corner.") == "top left" and rel.said_region("no") is None


def test_rationale_counts_tell_reading_from_comparing():
    scenes = make_split_scenes("test", 40)
    rows = rel.relative_questions(scenes)
    gold = [relative_probe(scenes[k].objects[i], scenes[k].objects[j], r, 3).answer if kind == "rel"
            else f"It is {REGION_PHRASES[region(scenes[k].objects[i])]}." for kind, k, i, j, r, _ in rows]
    g = rel.score(rows, gold, scenes, grid=3)["rationale"]
    for axis in ("horizontal", "vertical"):
        n = rel.score(rows, gold, scenes)["relative"][axis]["n"]
        assert g[axis]["parsed"] == n and g[axis]["cells_right"] == 2 * n and g[axis]["same_cell"] > 0
        assert g[axis]["order_right"] == g[axis]["ordered"] == g[axis]["follows_cells"] == n - g[axis]["same_cell"]
    # cells read in reverse: every order wrong, and a conclusion that keeps the true word no longer follows them
    swapped = [re.sub(r"(column|row) (\d) and (.+?) in \1 (\d),", r"\1 \4 and \3 in \1 \2,", a) for a in gold]
    s = rel.score(rows, swapped, scenes, grid=3)["rationale"]["horizontal"]
    assert s["order_right"] == s["follows_cells"] == 0 < s["ordered"]
    assert "rationale" not in rel.score(rows, gold, scenes)
