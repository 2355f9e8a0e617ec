"""The bridge between the engine thread and asyncio: a submission's events arrive on an asyncio queue."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from starlette.requests import Request

from .batching import Engine
from .sequences import Event, SeqSpec

T = TypeVar("T")


class Run:
    """Submit `specs` to `engine`; iterate to receive their events until every sequence has finished
    (or was cancelled here). Must be created inside the event loop."""

    def __init__(self, engine: Engine, specs: list[SeqSpec]):
        loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[list[Event]] = asyncio.Queue()

        def sink(events: list[Event]) -> None:
            loop.call_soon_threadsafe(self.queue.put_nowait, events)

        self.ticket = engine.submit(specs, sink)
        self.open = set(range(len(specs)))

    def cancel(self, index: int | None = None) -> None:
        """Stop one sequence (a stop string was reached) or all of them (the client went away)."""
        self.ticket.cancel(index)
        if index is None:
            self.open.clear()
        else:
            self.open.discard(index)

    async def events(self) -> AsyncIterator[Event]:
        while self.open:
            for ev in await self.queue.get():
                if ev.index not in self.open:
                    continue
                if ev.finish is not None:
                    self.open.discard(ev.index)
                yield ev


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
