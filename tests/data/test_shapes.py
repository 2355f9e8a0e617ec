"""Synthetic shapes scenes: determinism, held-out split, file formats, answer correctness."""

import json
import math
import random
import re

import numpy as np
import pytest
from PIL import Image

from lingvis.data.images import to_tensor
from lingvis.data.shapes import (
    COLOURS, HELD_OUT, SHAPES, ShapesDataset, generate_shapes, make_scene, make_split_scenes,
    questions, read_scenes_jsonl, render_scene, scene_class_index, shapes_class_names,
    shapes_class_prompts,
)
from lingvis.data.shapes_scene import Scene, ShapeObject

SPLITS = ("train", "val", "test", "test_unseen")


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("shapes")
    paths = generate_shapes(out, n_train=300, n_val=40, n_test=40, image_size=48, seed=3)
    return out, paths


def _load(paths, kind, split):
    return json.loads(paths[f"{kind}_{split}"].read_text())


def test_files_and_formats(shapes_dir):
    out, paths = shapes_dir
    assert paths["images"] == out / "images"
    image_ids, question_ids = set(), set()
    for split in SPLITS:
        caps = _load(paths, "captions", split)
        n = 300 if split == "train" else 40
        assert len(caps["images"]) == n
        for im in caps["images"]:
            assert set(im) == {"id", "file_name", "width", "height"} and im["width"] == 48
            assert Image.open(out / "images" / im["file_name"]).size == (48, 48)
        ids = {im["id"] for im in caps["images"]}
        assert {a["image_id"] for a in caps["annotations"]} == ids
        assert len({a["id"] for a in caps["annotations"]}) == len(caps["annotations"])
        assert not ids & image_ids
        image_ids |= ids
        qs = _load(paths, "questions", split)["questions"]
        anns = _load(paths, "annotations", split)["annotations"]
        assert [q["question_id"] for q in qs] == [a["question_id"] for a in anns]
        assert not {q["question_id"] for q in qs} & question_ids
        question_ids |= {q["question_id"] for q in qs}
        for a in anns:
            assert len(a["answers"]) == 10 and [x["answer_id"] for x in a["answers"]] == list(range(1, 11))
            assert all(x["answer"] == a["multiple_choice_answer"] for x in a["answers"])
            assert a["answer_type"] in ("yes/no", "number", "other")


def test_generation_is_deterministic(tmp_path):
    a = generate_shapes(tmp_path / "a", 30, 5, 5, image_size=32, seed=11)
    b = generate_shapes(tmp_path / "b", 30, 5, 5, image_size=32, seed=11)
    c = generate_shapes(tmp_path / "c", 30, 5, 5, image_size=32, seed=12)
    for key in a:
        if key != "images":
            assert a[key].read_bytes() == b[key].read_bytes(), key
    assert a["captions_train"].read_bytes() != c["captions_train"].read_bytes()
    for name in ("train_000000.png", "test_unseen_000004.png"):
        pa = np.asarray(Image.open(a["images"] / name))
        assert np.array_equal(pa, np.asarray(Image.open(b["images"] / name)))


def test_held_out_pairs_only_in_test_unseen(shapes_dir):
    out, paths = shapes_dir
    held_phrases = [f"{c} {s}" for c, s in HELD_OUT]
    for split in SPLITS:
        records = read_scenes_jsonl(paths[f"scenes_{split}"])
        has_held = [any((o.colour, o.shape) in HELD_OUT for o in r["scene"].objects) for r in records]
        texts = [a["caption"] for a in _load(paths, "captions", split)["annotations"]]
        texts += [q["question"] for q in _load(paths, "questions", split)["questions"]]
        mentioned = any(p in t for t in texts for p in held_phrases)
        if split == "test_unseen":
            assert all(has_held) and mentioned
        else:
            assert not any(has_held) and not mentioned
    train = read_scenes_jsonl(paths["scenes_train"])
    seen_colours = {o.colour for r in train for o in r["scene"].objects}
    seen_shapes = {o.shape for r in train for o in r["scene"].objects}
    assert seen_colours == set(COLOURS) and seen_shapes == set(SHAPES)


def test_scene_geometry_and_triples():
    rng = random.Random(0)
    for _ in range(200):
        scene = make_scene(rng)
        objs = scene.objects
        assert 1 <= len(objs) <= 3
        assert len({(o.colour, o.shape) for o in objs}) == len(objs)
        for i, a in enumerate(objs):
            assert a.r <= a.cx <= 1 - a.r and a.r <= a.cy <= 1 - a.r
            for b in objs[i + 1:]:
                assert math.hypot(a.cx - b.cx, a.cy - b.cy) > a.r + b.r
        for t in scene.triples:
            s, o = objs[t.subject], objs[t.object]
            ok = {"left of": s.cx < o.cx, "right of": s.cx > o.cx,
                  "above": s.cy < o.cy, "below": s.cy > o.cy}[t.relation]
            assert ok, (t, s, o)


def test_render_colours_at_centres():
    rng = random.Random(1)
    for _ in range(30):
        scene = make_scene(rng)
        img = np.asarray(render_scene(scene, 64)).astype(int)
        for o in scene.objects:
            px = img[int(o.cy * 64), int(o.cx * 64)]
            assert np.abs(px - np.array(COLOURS[o.colour])).max() <= 3, (o, px)
        assert (img[0, 0] == 255).all() or any(o.cx - o.r < 0.05 for o in scene.objects)


def _answer_from_scene(scene: Scene, q: str) -> str | None:
    """Independent re-derivation of answers for templated questions (None: not checked)."""
    objs = scene.objects
    if q == "how many shapes are there?":
        return str(len(objs))
    if m := re.fullmatch(r"is there an? (\w+) (\w+)\?", q):
        return "yes" if any((o.colour, o.shape) == m.groups() for o in objs) else "no"
    if m := re.fullmatch(r"how many (\w+) shapes are there\?", q):
        return str(sum(o.colour == m.group(1) for o in objs))
    if m := re.fullmatch(r"what colour is the (?:(small|large) )?(\w+)\?", q):
        size, shape = m.groups()
        hits = [o for o in objs if o.shape == shape and (size is None or o.size == size)]
        assert len(hits) == 1, q
        return hits[0].colour
    if m := re.fullmatch(r"is the (\w+) (\w+) to the left or to the right of the (\w+) (\w+)\?", q):
        a = next(o for o in objs if (o.colour, o.shape) == m.groups()[:2])
        b = next(o for o in objs if (o.colour, o.shape) == m.groups()[2:])
        return "left" if a.cx < b.cx else "right"
    if m := re.fullmatch(r"is the (\w+) (\w+) above or below the (\w+) (\w+)\?", q):
        a = next(o for o in objs if (o.colour, o.shape) == m.groups()[:2])
        b = next(o for o in objs if (o.colour, o.shape) == m.groups()[2:])
        return "above" if a.cy < b.cy else "below"
    if m := re.fullmatch(r"what shape is the (?:(small|large) )?(\w+) object\?", q):
        size, colour = m.groups()
        hits = [o for o in objs if o.colour == colour and (size is None or o.size == size)]
        assert len(hits) == 1, q
        return hits[0].shape
    return None


def test_answers_are_correct(shapes_dir):
    _, paths = shapes_dir
    scenes = {r["image_id"]: r["scene"] for r in read_scenes_jsonl(paths["scenes_train"])}
    qs = _load(paths, "questions", "train")["questions"]
    anns = _load(paths, "annotations", "train")["annotations"]
    checked, types = 0, set()
    for q, a in zip(qs, anns):
        types.add(a["question_type"])
        expected = _answer_from_scene(scenes[q["image_id"]], q["question"])
        if expected is not None:
            assert a["multiple_choice_answer"] == expected, q["question"]
            checked += 1
    assert types == {"colour", "shape", "count", "position", "yes/no"}
    assert checked > 0.7 * len(qs)
    yes_no = [a["multiple_choice_answer"] for a in anns if a["question_type"] == "yes/no"]
    assert 0.3 < yes_no.count("yes") / len(yes_no) < 0.7


def test_relational_captions_match_geometry():
    scene = Scene([ShapeObject("circle", "red", "small", 0.2, 0.5, 0.1),
                   ShapeObject("square", "blue", "large", 0.75, 0.5, 0.18)])
    from lingvis.data.shapes_language import captions
    caps = captions(scene, random.Random(0))
    assert "a small red circle to the left of a large blue square" in caps
    assert "a large blue square to the right of a small red circle" in caps
    assert caps[0] == "a small red circle and a large blue square"
    for seed in range(20):
        for qa in questions(scene, random.Random(seed)):
            expected = _answer_from_scene(scene, qa.question)
            assert expected is None or qa.answer == expected, qa


def test_class_names_and_prompts(shapes_dir):
    names = shapes_class_names()
    prompts = shapes_class_prompts()
    assert len(names) == len(COLOURS) * len(SHAPES) == len(prompts) == len(set(names))
    assert prompts[names.index("red circle")] == "a photo of a red circle"
    assert prompts[names.index("orange star")] == "a photo of an orange star"
    single = Scene([ShapeObject("star", "green", "small", 0.5, 0.5, 0.1)])
    assert names[scene_class_index(single)] == "green star"
    with pytest.raises(ValueError, match="single-object"):
        scene_class_index(Scene([*single.objects, ShapeObject("cross", "red", "small", 0.1, 0.1, 0.05)]))
    _, paths = shapes_dir
    for r in read_scenes_jsonl(paths["scenes_val"]):
        if len(r["objects"]) == 1:
            o = r["objects"][0]
            assert names[r["class_index"]] == f"{o['colour']} {o['shape']}"
        else:
            assert r["class_index"] is None


def test_read_scenes_malformed(tmp_path):
    p = tmp_path / "scenes_x.jsonl"
    p.write_text('{"objects": [], "triples": []}\n{"objects": [{"shape": "circle"}]}\n')
    with pytest.raises(ValueError, match=r"scenes_x.jsonl:2"):
        read_scenes_jsonl(p)


def test_in_memory_dataset_and_splits():
    ds = ShapesDataset("train", n=20, seed=5, image_size=32, transform=to_tensor, max_objects=1)
    item = ds[3]
    assert item["image"].shape == (3, 32, 32) and 0 <= item["label"] < 30
    assert item["text"] == item["captions"][0]
    assert [s.objects for s in make_split_scenes("val", 5, seed=5)] == \
           [s.objects for s in make_split_scenes("val", 5, seed=5)]
    with pytest.raises(ValueError, match="unknown split"):
        make_split_scenes("dev", 5)
