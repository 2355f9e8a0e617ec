"""The relative-position check: gold answers are right, flip on every swap, and follow their own regions; a constant
word per axis is right about half the time and never flips."""
from benchmarks import llava_relative as rel
from lingvis.data.shapes import make_split_scenes
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
