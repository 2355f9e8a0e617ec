"""A seeded train/validation split of whole items (images with their captions, videos, scenes)."""
from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def holdout_split(items: Sequence[T], val_fraction: float, seed: int = 0, max_val: int | None = None,
                  noun: str = "items") -> tuple[list[T], list[T]]:
    """Shuffle with `seed` and hold out `val_fraction` of the items (at least one, at most `max_val`) for
    validation; `noun` names the items in the errors."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if len(items) < 2:
        raise ValueError(f"need at least 2 {noun} to split train/val, got {len(items)}")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = max(1, int(len(items) * val_fraction))
    if max_val is not None:
        n_val = min(n_val, max_val)
    return [items[i] for i in order[n_val:]], [items[i] for i in order[:n_val]]
