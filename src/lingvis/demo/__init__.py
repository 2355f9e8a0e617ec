"""`lingvis demo`: one short step per family on built-in data. Steps register in STEPS, in order."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

STEPS: dict[str, Callable[[Path], dict]] = {}
MODULES = ["gpt", "bert", "translate", "caption", "vqa", "clip", "chat", "llava", "text_to_image", "kg",
           "video"]  # run in this order


def step(name: str):
    def deco(fn):
        STEPS[name] = fn
        return fn
    return deco


def load_steps() -> dict[str, Callable[[Path], dict]]:
    for m in MODULES:
        importlib.import_module(f"{__name__}.{m}")
    return STEPS
