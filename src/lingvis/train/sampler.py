"""A batch sampler whose position is a pure function of (seed, batches consumed): resume needs one int."""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableBatchSampler(Sampler[list[int]]):
    """Endless shuffled batches. Epoch e uses permutation `randperm(n, seed + e)`; each global batch of
    `batch_size * world_size` indices is split so that rank r takes the r-th slice."""

    def __init__(self, n: int, batch_size: int, seed: int = 0, start: int = 0, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True):
        global_batch = batch_size * world_size
        if n < global_batch:
            raise ValueError(f"dataset has {n} examples, fewer than one global batch of {global_batch}")
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.per_epoch = n // global_batch

    def _perm(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))

    def __iter__(self) -> Iterator[list[int]]:
        b = self.start
        epoch, perm = -1, None
        gb = self.batch_size * self.world_size
        while True:
            e, i = divmod(b, self.per_epoch)
            if e != epoch:
                epoch, perm = e, self._perm(e)
            chunk = perm[i * gb:(i + 1) * gb]
            yield chunk[self.rank * self.batch_size:(self.rank + 1) * self.batch_size].tolist()
            b += 1
