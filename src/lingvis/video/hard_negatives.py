"""Hard negatives for contrastive video-text training: each item is a video plus videos that share its group
key (e.g. the same objects) but differ in label, so a batch holds clips whose captions differ only in what the
key leaves out (the motion). Random batches rarely do: among many (colour, shape) pairs a batch of 64 has
about two clips per pair, and the loss is then solved by appearance alone."""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from torch.utils.data import Dataset


class HardNegativeGroups(Dataset):
    """Item i = [item i of `dataset`, then up to `size - 1` items with the same `keys[i]`] (a list; the task's
    collate flattens it). With `labels`, partners have labels different from item i's and from each other
    (as far as the group allows); items whose key is None get no partners. Partners are drawn from a
    generator seeded with `seed` (`reseed` gives each DataLoader worker its own)."""

    def __init__(self, dataset: Dataset, keys: Sequence, size: int, labels: Sequence | None = None, seed: int = 0):
        if size < 1:
            raise ValueError(f"hard-negative group size must be >= 1, got {size}")
        if len(keys) != len(dataset):
            raise ValueError(f"{len(keys)} group keys for {len(dataset)} items")
        if labels is not None and len(labels) != len(dataset):
            raise ValueError(f"{len(labels)} labels for {len(dataset)} items")
        self.dataset, self.keys, self.size, self.labels = dataset, list(keys), size, labels
        members: dict = defaultdict(list)
        for i, k in enumerate(self.keys):
            if k is not None:
                members[k].append(i)
        self.members = dict(members)
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def reseed(self, seed: int) -> None:
        self.rng = random.Random(seed)
        inner = getattr(self.dataset, "reseed", None)
        if inner is not None:
            inner(seed)

    def partners(self, i: int) -> list[int]:
        """Indices drawn to go with item i."""
        k = self.keys[i]
        if k is None or self.size == 1:
            return []
        pool = [j for j in self.members[k] if j != i]
        self.rng.shuffle(pool)
        if self.labels is None:
            return pool[:self.size - 1]
        seen, picked, rest = {self.labels[i]}, [], []
        for j in pool:  # distinct labels first, then (if the group is short of them) any
            (rest if self.labels[j] in seen else picked).append(j)
            seen.add(self.labels[j])
        return (picked + rest)[:self.size - 1]

    def __getitem__(self, i: int) -> list:
        return [self.dataset[i]] + [self.dataset[j] for j in self.partners(i)]


def group_keys(records: Sequence, field: str) -> list:
    """The `field` of each record's metadata (None where absent)."""
    keys = [r.meta.get(field) for r in records]
    if all(k is None for k in keys):
        raise ValueError(f"no video has the group field {field!r} (fields: "
                         f"{sorted({f for r in records for f in r.meta})[:10]})")
    return keys
