"""Seeded synthetic shapes scenes: images, captions, VQA pairs and relation triples.

`generate_shapes` writes COCO-captions and VQAv2-style files per split; `make_split_scenes`,
`render_scene` and `ShapesDataset` give the same data in memory. The `test_unseen` split contains
at least one (colour, shape) pair from `HELD_OUT` per scene; train/val/test never contain one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable

from torch.utils.data import Dataset

from lingvis.data.shapes_instruct import InstructConfig, instruction_records
from lingvis.data.shapes_language import QA, article, captions, questions
from lingvis.data.shapes_render import render_scene
from lingvis.data.shapes_scene import (
    COLOURS,
    HELD_OUT,
    SHAPES,
    Scene,
    ShapeObject,
    Triple,
    is_held_out,
    make_scene,
)
from lingvis.jsonfile import iter_jsonl
from lingvis.progress import progress

__all__ = [
    "COLOURS", "HELD_OUT", "SHAPES", "SPLITS", "Scene", "ShapeObject", "Triple", "QA",
    "make_scene", "render_scene", "captions", "questions", "make_split_scenes", "generate_shapes",
    "shapes_class_names", "shapes_class_prompts", "scene_class_index", "read_scenes_jsonl",
    "ShapesDataset", "is_held_out",
]

SPLITS = ("train", "val", "test", "test_unseen")
N_ANSWERS = 10  # VQAv2 stores ten human answers per question


def shapes_class_names() -> list[str]:
    """Zero-shot classes 'colour shape' for every colour x shape pair (held-out pairs included)."""
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def shapes_class_prompts(template: str = "a photo of {a} {colour} {shape}") -> list[str]:
    """One prompt per class of `shapes_class_names()`; `{a}` is the article ('a' / 'an')."""
    return [template.format(a=article(c), colour=c, shape=s) for c in COLOURS for s in SHAPES]


def scene_class_index(scene: Scene) -> int:
    """Index into `shapes_class_names()` of a single-object scene."""
    if len(scene.objects) != 1:
        raise ValueError(f"class index needs a single-object scene, got {len(scene.objects)} objects")
    o = scene.objects[0]
    return shapes_class_names().index(f"{o.colour} {o.shape}")


def _split_rng(seed: int, split: str) -> random.Random:
    return random.Random(f"lingvis-shapes/{seed}/{split}")


def make_split_scenes(
    split: str, n: int, seed: int = 0, min_objects: int = 1, max_objects: int = 3
) -> list[Scene]:
    """Deterministic scenes for a split (`test_unseen` requires a held-out pair in every scene)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    rng = _split_rng(seed, split)
    held_out = "require" if split == "test_unseen" else "exclude"
    return [make_scene(rng, min_objects, max_objects, held_out) for _ in range(n)]


def _vqa_records(image_id: int, qas: list[QA]) -> tuple[list[dict], list[dict]]:
    qs, anns = [], []
    for k, qa in enumerate(qas):
        qid = image_id * 100 + k
        qs.append({"question_id": qid, "image_id": image_id, "question": qa.question})
        answers = [{"answer": qa.answer, "answer_confidence": "yes", "answer_id": a + 1}
                   for a in range(N_ANSWERS)]
        anns.append({"question_id": qid, "image_id": image_id, "question_type": qa.question_type,
                     "answer_type": qa.answer_type, "multiple_choice_answer": qa.answer,
                     "answers": answers})
    return qs, anns


def _write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False))
    return path


def _write_split(
    out: Path, split: str, scenes: list[Scene], first_id: int, seed: int, size: int,
    instruct: InstructConfig | None = None,
) -> dict[str, Path]:
    rng = _split_rng(seed, split + "/text")
    images, caps, qs, anns, lines = [], [], [], [], []
    for k, scene in enumerate(progress(scenes, desc=f"shapes {split}", unit="image", delay=2, leave=False)):
        image_id = first_id + k
        file_name = f"{split}_{k:06d}.png"
        render_scene(scene, size).save(out / "images" / file_name, compress_level=1)
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        scene_caps = captions(scene, rng)
        for c in scene_caps:  # ids stay unique across splits: < 10 captions per image
            caps.append({"id": first_id * 10 + len(caps), "image_id": image_id, "caption": c})
        q, a = _vqa_records(image_id, questions(scene, rng))
        qs += q
        anns += a
        label = scene_class_index(scene) if len(scene.objects) == 1 else None
        lines.append(json.dumps({"image_id": image_id, "file_name": file_name, **scene.to_dict(),
                                 "captions": scene_caps, "class_index": label}))
    info = {"description": f"lingvis synthetic shapes, split {split}, seed {seed}"}
    scenes_path = out / f"scenes_{split}.jsonl"
    scenes_path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return {
        f"captions_{split}": _write_json(out / f"captions_{split}.json",
                                         {"info": info, "images": images, "annotations": caps}),
        f"questions_{split}": _write_json(out / f"questions_{split}.json", {"info": info, "questions": qs}),
        f"annotations_{split}": _write_json(out / f"annotations_{split}.json",
                                            {"info": info, "annotations": anns}),
        f"scenes_{split}": scenes_path,
        f"llava_{split}": _write_json(out / f"llava_{split}.json", instruction_records(  # LLaVA instruction set
            scenes, [f"images/{im['file_name']}" for im in images], seed, split=split, config=instruct)),
    }


def generate_shapes(
    out_dir: str | Path, n_train: int = 2000, n_val: int = 200, n_test: int = 200,
    image_size: int = 64, seed: int = 0, n_test_unseen: int | None = None, instruct: InstructConfig | None = None,
) -> dict[str, Path]:
    """Write every split under `out_dir`; returns {'images': dir, 'captions_train': ..., ...}. `instruct` shapes
    the LLaVA instruction set (`llava_<split>.json`; default `InstructConfig()`)."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    counts = {"train": n_train, "val": n_val, "test": n_test,
              "test_unseen": n_test if n_test_unseen is None else n_test_unseen}
    paths: dict[str, Path] = {"images": out / "images"}
    first_id = 1
    for split, n in counts.items():
        if n < 0:
            raise ValueError(f"number of {split} scenes must be >= 0, got {n}")
        scenes = make_split_scenes(split, n, seed)
        paths.update(_write_split(out, split, scenes, first_id, seed, image_size, instruct))
        first_id += n
    return paths


def read_scenes_jsonl(path: str | Path) -> list[dict]:
    """Records of a `scenes_<split>.jsonl` file with the 'scene' key rebuilt as a `Scene`."""
    path = Path(path)
    records = []
    for lineno, rec in iter_jsonl(path):
        try:
            rec["scene"] = Scene.from_dict(rec)
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path}:{lineno}: malformed scene record: {e}") from e
        records.append(rec)
    return records


class ShapesDataset(Dataset):
    """In-memory scenes rendered on access: {'image', 'text', 'captions', 'label'} (label -1 if >1 object)."""

    def __init__(
        self, split: str = "train", n: int = 1000, seed: int = 0, image_size: int = 64,
        transform: Callable | None = None, min_objects: int = 1, max_objects: int = 3,
    ) -> None:
        self.scenes = make_split_scenes(split, n, seed, min_objects, max_objects)
        rng = _split_rng(seed, split + "/text")
        self.captions = [captions(s, rng) for s in self.scenes]
        self.image_size = image_size
        self.transform = transform

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, i: int) -> dict:
        scene = self.scenes[i]
        img = render_scene(scene, self.image_size)
        label = scene_class_index(scene) if len(scene.objects) == 1 else -1
        return {"image": self.transform(img) if self.transform else img,
                "text": self.captions[i][0], "captions": self.captions[i], "label": label}
