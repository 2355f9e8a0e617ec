"""`generate_videos`: write synthetic motion clips (see `motion.py`) as video files with class folders, a
`path,label` CSV, MSR-VTT-style captions JSON and MSRVTT-QA-style question JSON per split.

Splits: train and val draw clips at random (balanced classes, separate seeds); test is made of groups, each
one (colour, shape) pair with one clip of every class, so its single-shape captions differ only in motion.
"""
from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

from ..io import atomic_write_text
from .motion import KINDS, MotionClip, motion_clips, motion_groups
from .motion_language import captions, questions
from .write import write_video

SPLITS = ("train", "val", "test")


def _write_split(out: Path, split: str, clips: list[MotionClip], size: int, fps: float, ext: str, seed: int,
                 groups: int | None = None) -> dict[str, Path]:
    rng = random.Random(f"lingvis-motion-text/{seed}/{split}")
    rows, videos, sentences, qa = [], [], [], []
    per_group = len(clips) // groups if groups else None
    for i, clip in enumerate(clips):
        vid = f"{split}_{i:05d}"
        rel = Path(split) / clip.kind / f"{vid}{ext}"
        write_video(out / rel, (f for f in clip.frames(size)), fps=fps)
        rows.append((rel.as_posix(), clip.kind))
        main = clip.tracks[0]
        entry = {"video_id": vid, "path": rel.as_posix(), "label": clip.kind, "split": split,
                 "subject": f"{main.colour} {main.shape}"}  # clips sharing it differ in motion (hard negatives)
        if per_group:
            entry["group"] = i // per_group
        videos.append(entry)
        for caption in captions(clip, rng):
            sentences.append({"video_id": vid, "caption": caption, "sen_id": len(sentences)})
        for q in questions(clip):
            qa.append({"id": len(qa), "video_id": vid, "path": rel.as_posix(), **q})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("path", "label"))
    writer.writerows(rows)
    paths = {f"csv_{split}": out / f"{split}.csv", f"captions_{split}": out / f"captions_{split}.json",
             f"qa_{split}": out / f"qa_{split}.json", f"videos_{split}": out / split}
    atomic_write_text(paths[f"csv_{split}"], buf.getvalue())
    info = {"description": f"lingvis synthetic motion clips, split {split}, seed {seed}", "fps": fps,
            "frames": clips[0].num_frames if clips else 0, "size": size, "classes": list(KINDS)}
    atomic_write_text(paths[f"captions_{split}"], json.dumps({"info": info, "videos": videos,
                                                              "sentences": sentences}, indent=1))
    atomic_write_text(paths[f"qa_{split}"], json.dumps(qa, indent=1))
    return paths


def generate_videos(out_dir: str | Path, n_train: int = 100, n_val: int = 20, n_test_groups: int = 10,
                    size: int = 32, num_frames: int = 16, fps: float = 8.0, seed: int = 0,
                    kinds: tuple[str, ...] = KINDS, ext: str = ".mp4") -> dict[str, Path]:
    """Write every split under `out_dir` (train/val: `n_train`/`n_val` clips per class; test:
    `n_test_groups` colour x shape groups with one clip per class); returns {name: path}."""
    if n_train < 0 or n_val < 0 or n_test_groups < 0:
        raise ValueError(f"split sizes must be >= 0, got train={n_train} val={n_val} test groups={n_test_groups}")
    if size % 2:
        raise ValueError(f"frame size must be even (yuv420p video), got {size}")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown motion kinds {unknown}; known: {list(KINDS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = {"train": motion_clips(n_train, f"{seed}/train", kinds, num_frames),
              "val": motion_clips(n_val, f"{seed}/val", kinds, num_frames),
              "test": motion_groups(n_test_groups, f"{seed}/test", kinds, num_frames)}
    paths: dict[str, Path] = {"root": out}
    for split, clips in splits.items():
        paths.update(_write_split(out, split, clips, size, fps, ext, seed,
                                  groups=n_test_groups if split == "test" else None))
    atomic_write_text(out / "classes.txt", "\n".join(kinds) + "\n")
    paths["classes"] = out / "classes.txt"
    return paths
