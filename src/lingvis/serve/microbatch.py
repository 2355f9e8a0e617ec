"""Dynamic batching for one-shot model calls (captions): requests that arrive while a batch runs are
grouped into the next call, up to `max_batch`; at most `max_queue` may wait (429 beyond)."""
from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

import anyio.to_thread

from .errors import QueueFull


class MicroBatcher:
    """`fn(key, items) -> results` runs in a worker thread on up to `max_batch` items that share `key`
    (e.g. the decoding settings); one batch at a time per batcher."""

    def __init__(self, fn: Callable[[Hashable, list[Any]], list[Any]], max_batch: int, max_queue: int, name: str):
        self.fn, self.max_batch, self.max_queue, self.name = fn, max_batch, max_queue, name
        self.pending: list[tuple[Hashable, Any, asyncio.Future]] = []
        self.running: asyncio.Task | None = None
        self.batches = self.items = self.largest = 0
        self.sizes: Counter = Counter()  # items per batch -> batches

    async def submit(self, key: Hashable, item: Any) -> Any:
        if len(self.pending) >= self.max_queue:
            raise QueueFull(f"{self.name}: {len(self.pending)} requests are already waiting "
                            f"(queue bound {self.max_queue}); retry later")
        fut = asyncio.get_running_loop().create_future()
        self.pending.append((key, item, fut))
        if self.running is None or self.running.done():
            self.running = asyncio.ensure_future(self._drain())
        return await fut

    def _take(self) -> tuple[Hashable, list[tuple[Any, asyncio.Future]]]:
        """The oldest request's key and up to max_batch waiting requests with that key (oldest first)."""
        key = self.pending[0][0]
        chosen = [p for p in self.pending if p[0] == key][:self.max_batch]
        self.pending = [p for p in self.pending if p not in chosen]
        return key, [(item, fut) for _, item, fut in chosen]

    async def _drain(self) -> None:
        while self.pending:
            key, batch = self._take()
            batch = [(item, fut) for item, fut in batch if not fut.cancelled()]  # their clients left
            if not batch:
                continue
            try:
                results = await anyio.to_thread.run_sync(self.fn, key, [item for item, _ in batch])
            except Exception as e:  # every request of the batch gets the error
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            self.batches, self.items = self.batches + 1, self.items + len(batch)
            self.largest = max(self.largest, len(batch))
            self.sizes[len(batch)] += 1
            for (_, fut), res in zip(batch, results):
                if not fut.done():
                    fut.set_result(res)

    def stats(self) -> dict:
        return {"waiting": len(self.pending), "batches": self.batches, "items": self.items,
                "largest_batch": self.largest, "max_queue": self.max_queue}
