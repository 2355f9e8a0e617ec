"""Shape twins for the diffusion task's twin loss (`DiffusionTask.twin_weight`): each training image of the shapes
world comes with its twin, the same scene with one object's shape changed (same colour, size and place), rendered on
the fly, and the caption with that object's shape word changed. Trained with the same noise and noise level, the
pair's difference isolates exactly what the shape word decides, which the plain MSE gives almost no weight
(docs/text_to_image.md, "2026-12-08 sixth session")."""
from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .shapes_render import render_scene
from .shapes_scene import SHAPES, Scene, is_held_out


def scenes_by_file(path: str | Path) -> dict[str, Scene]:
    """`scenes_<split>.jsonl` of a generated shapes split -> {image file name: scene}."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            out[Path(d["file_name"]).name] = Scene.from_dict(d)
    return out


def twin_of(scene: Scene, text: str, rng: random.Random) -> tuple[Scene, str]:
    """(twin scene, twin caption): one object (drawn at random among those the caption names as "<colour> <shape>")
    gets another shape that no other object of its colour has and that is not a held-out (colour, shape) pair (those
    stay unseen in training); the caption's "<colour> <shape>" follows."""
    named = [k for k, o in enumerate(scene.objects) if f"{o.colour} {o.shape}" in text]
    if not named:
        raise ValueError(f"the caption {text!r} names none of the scene's objects as '<colour> <shape>'")
    k = rng.choice(named)
    o = scene.objects[k]
    taken = {p.shape for p in scene.objects if p.colour == o.colour}
    new = rng.choice([s for s in SHAPES if s not in taken and not is_held_out(o.colour, s)])
    objects = list(scene.objects)
    objects[k] = replace(o, shape=new)
    return Scene(objects), text.replace(f"{o.colour} {o.shape}", f"{o.colour} {new}")


class ShapeTwins(Dataset):
    """Wraps a `CaptionedImages` of a generated shapes split: items gain "twin_image" ((3, H, W) in [-1, 1], drawn
    as the split's images are) and "twin_text"."""

    def __init__(self, base, scenes_jsonl: str | Path, image_size: int, seed: int = 0):
        by_file = scenes_by_file(scenes_jsonl)
        self.scenes = []
        for g in base.groups:
            name = Path(g[0].image_path or g[0].key).name
            if name not in by_file:
                raise ValueError(f"{scenes_jsonl}: no scene for the image {name!r}")
            self.scenes.append(by_file[name])
        self.base, self.size, self.rng = base, image_size, random.Random(f"shape-twins/{seed}")

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.base[i])
        scene, text = twin_of(self.scenes[i], item["text"], self.rng)
        img = render_scene(scene, self.size)
        pixels = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(self.size, self.size, 3)
        item["twin_image"] = pixels.permute(2, 0, 1).float() / 127.5 - 1  # (3, H, W) as image_transform maps
        item["twin_text"] = text
        return item
