"""Stage-1 region captions: every object of the scene with its 3 x 3 region, one caption per image."""
from __future__ import annotations

import json

import pytest

from lingvis.data.shapes import generate_shapes, make_split_scenes, read_scenes_jsonl
from lingvis.data.shapes_language import REGION_PHRASES
from lingvis.data.shapes_regions import region_caption, write_region_captions
from lingvis.data.shapes_scene import region
from lingvis.recipes.llava_eval import named_objects


def test_region_caption_names_every_object_with_its_region():
    for scene in make_split_scenes("train", 200):
        cap = region_caption(scene)
        assert named_objects(cap) == {(o.colour, o.shape) for o in scene.objects}
        for o in scene.objects:
            assert f"{o.size} {o.colour} {o.shape} {REGION_PHRASES[region(o)]}" in cap
        firsts = [cap.index(f"{o.size} {o.colour} {o.shape} ") for o in sorted(scene.objects, key=lambda o: o.cx)]
        assert firsts == sorted(firsts)  # left to right


def test_write_region_captions_keeps_the_splits_images(tmp_path):
    paths = generate_shapes(tmp_path, n_train=12, n_val=3, n_test=0, n_test_unseen=0)
    out = write_region_captions(tmp_path, "train")
    src, new = json.loads(paths["captions_train"].read_text()), json.loads(out.read_text())
    assert out.name == "captions_train_regions.json" and new["images"] == src["images"]
    scenes = {r["image_id"]: r["scene"] for r in read_scenes_jsonl(paths["scenes_train"])}
    assert [a["image_id"] for a in new["annotations"]] == [im["id"] for im in src["images"]]  # one each
    assert all(a["caption"] == region_caption(scenes[a["image_id"]]) for a in new["annotations"])
    assert len({a["id"] for a in new["annotations"]}) == 12


def test_write_region_captions_refuses_images_without_scenes(tmp_path):
    generate_shapes(tmp_path, n_train=4, n_val=0, n_test=0, n_test_unseen=0)
    lines = (tmp_path / "scenes_train.jsonl").read_text().splitlines()
    (tmp_path / "scenes_train.jsonl").write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(ValueError, match="have no scene"):
        write_region_captions(tmp_path, "train")
