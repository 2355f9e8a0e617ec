"""Stage-1 captions that name every object's place: "a large red circle in the top left corner and a small blue
star in the center" (each object with its 3 x 3 region), one per image, written as a COCO-captions file beside the
shapes split's own (`captions_<split>_regions.json`). Stage 1 trains the projector alone, so captions that need each
object's region are the projector's only push to expose where objects are in the image tokens."""
from __future__ import annotations

import json
from pathlib import Path

from lingvis.data.shapes import read_scenes_jsonl
from lingvis.data.shapes_language import REGION_PHRASES, join_list, np_indefinite
from lingvis.data.shapes_scene import Scene, region


def region_caption(scene: Scene) -> str:
    """Every object of the scene, left to right by centre, with its size, colour, shape and region."""
    objs = sorted(scene.objects, key=lambda o: (o.cx, o.cy))
    return join_list([f"{np_indefinite(o)} {REGION_PHRASES[region(o)]}" for o in objs])


def write_region_captions(folder: str | Path, split: str = "train") -> Path:
    """`captions_<split>_regions.json` in a shapes folder: the split's images, one region caption each (read
    from `scenes_<split>.jsonl` and `captions_<split>.json`, so the image ids and files are the split's)."""
    folder = Path(folder)
    src = json.loads((folder / f"captions_{split}.json").read_text())
    scenes = {r["image_id"]: r["scene"] for r in read_scenes_jsonl(folder / f"scenes_{split}.jsonl")}
    missing = [im["id"] for im in src["images"] if im["id"] not in scenes]
    if missing:
        raise ValueError(f"{folder}: {len(missing)} images of captions_{split}.json have no scene in "
                         f"scenes_{split}.jsonl (first id {missing[0]})")
    anns = [{"id": k, "image_id": im["id"], "caption": region_caption(scenes[im["id"]])}
            for k, im in enumerate(src["images"])]
    out = folder / f"captions_{split}_regions.json"
    out.write_text(json.dumps({"info": {**src.get("info", {}), "regions": True}, "images": src["images"],
                               "annotations": anns}))
    return out
