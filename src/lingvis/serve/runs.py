"""The bridge between the engine thread and asyncio: a submission's events arrive on an asyncio queue."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from starlette.requests import Request

from .batching import Engine
from .sequences import Event, SeqSpec

T = TypeVar("T")


class LoopSink:
    """A sink whose events must be handed to an asyncio loop. The engine wakes each loop once per step
    for all of its sinks (`deliver_all`), instead of once per request."""

    def __init__(self, loop: asyncio.AbstractEventLoop, put):
        self.loop, self.put = loop, put

    def __call__(self, events: list[Event]) -> None:
        self.loop.call_soon_threadsafe(self.put, events)

    @staticmethod
    def deliver_all(pairs: list[tuple["LoopSink", list[Event]]]) -> None:
        """Called in the loop: hand every sink its events."""
        for sink, events in pairs:
            sink.put(events)


class Run:
    """Submit `specs` to `engine`; iterate to receive their events until every sequence has finished
    (or was cancelled here). Must be created inside the event loop."""

    def __init__(self, engine: Engine, specs: list[SeqSpec]):
        self.queue: asyncio.Queue[list[Event]] = asyncio.Queue()
        self.ticket = engine.submit(specs, LoopSink(asyncio.get_running_loop(), self.queue.put_nowait))
        self.open = set(range(len(specs)))

    def cancel(self, index: int | None = None) -> None:
        """Stop one sequence (a stop string was reached) or all of them (the client went away)."""
        self.ticket.cancel(index)
        if index is None:
            self.open.clear()
        else:
            self.open.discard(index)

    async def batches(self) -> AsyncIterator[list[Event]]:
        """Events as they arrive, grouped: everything already queued comes in one list, so a client that
        fell behind the engine gets several tokens per network write."""
        while self.open:
            arrived = await self.queue.get()
            while not self.queue.empty():
                arrived = arrived + self.queue.get_nowait()
            batch = []
            for ev in arrived:
                if ev.index not in self.open:
                    continue
                if ev.finish is not None:
                    self.open.discard(ev.index)
                batch.append(ev)
            if batch:
                yield batch


class ClientGone(Exception):
    """The client closed the connection before the answer was ready."""


async def unless_disconnected(request: Request, work: Awaitable[T], on_gone, poll_s: float = 0.25) -> T:
    """Await `work`; if the client disconnects first, call `on_gone()` (e.g. cancel generation) and
    raise ClientGone."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_s)
            if done:
                return task.result()
            if await request.is_disconnected():
                on_gone()
                raise ClientGone()
    finally:
        if not task.done():
            task.cancel()
