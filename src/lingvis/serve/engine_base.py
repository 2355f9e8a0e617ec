"""What every serving engine shares: a background thread, a bounded queue, counters, and event delivery.

An engine takes `submit(specs, sink)` from any thread, decodes on its own thread, and reports `Event`s to
each sequence's sink, grouped per step (`hand_out`). Subclasses (`batching.Engine` for causal LMs,
`seq2seq_batching.Seq2SeqEngine` for translation) supply `_serve` (the thread's loop), `_waiting_count` and
what they queue.
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable

from .errors import QueueFull
from .sequences import Event, Seq

Sink = Callable[[list[Event]], None]


def hand_out(pairs) -> None:
    """Hand out one step's (sink, events) pairs: one wake-up per asyncio loop (sinks with `loop` and
    `deliver_all`, see runs.LoopSink), a direct call for any other sink."""
    by_loop: dict[int, list] = {}
    for sink, events in pairs:
        loop = getattr(sink, "loop", None)
        if loop is not None:
            by_loop.setdefault(id(loop), [loop, type(sink).deliver_all, []])[2].append((sink, events))
        else:
            sink(events)
    for loop, deliver, grouped in by_loop.values():
        try:
            loop.call_soon_threadsafe(deliver, grouped)
        except RuntimeError:  # the receiving event loop is gone
            pass


class Ticket:
    """The sequences of one submission; `cancel()` stops them (a disconnected client, a stop string)."""

    def __init__(self, engine: "EngineBase", seqs: list[Seq]):
        self.engine, self.seqs = engine, seqs

    def cancel(self, index: int | None = None) -> None:
        self.engine.cancel([s for s in self.seqs if index is None or s.index == index])


class EngineBase(ABC):
    """Thread, queue bound, counters and event delivery of a serving engine."""

    COUNTERS: tuple[str, ...] = ()
    MEAN_BATCH: tuple[str, str] = ("rows", "batches")  # counters whose ratio is the mean batch size
    THREAD_PREFIX = "lingvis-engine"

    def __init__(self, model, max_batch: int = 32, max_queue: int = 64, name: str = "model"):
        if max_batch < 1 or max_queue < 1:
            raise ValueError(f"max_batch and max_queue must be >= 1, got {max_batch} and {max_queue}")
        self.model, self.name = model.eval(), name
        self.context = int(model.context_length)
        self.device = next(model.parameters()).device
        self.max_batch, self.max_queue = max_batch, max_queue
        self.counters: Counter = Counter()
        self.batch_sizes: Counter = Counter()  # rows per forward pass -> passes (the /metrics histogram)
        self._out: dict[int, tuple[Sink, list[Event]]] = {}
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    # ----- public, any thread -----------------------------------------------------------------
    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=f"{self.THREAD_PREFIX}-{self.name}",
                                            daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def stats(self) -> dict:
        c = self.counters
        rows, passes = self.MEAN_BATCH
        return {"active": self._active_count(), "waiting": self._waiting_count(), "max_batch": self.max_batch,
                "max_queue": self.max_queue, "context_length": self.context,
                "mean_batch": round(c[rows] / c[passes], 2) if c[passes] else 0.0,
                **{k: c[k] for k in self.COUNTERS}}

    # ----- what each engine supplies ---------------------------------------------------------
    @abstractmethod
    def _serve(self) -> None:
        """The engine thread's loop: admit, decode and report until `close()`."""

    @abstractmethod
    def _waiting_count(self) -> int:
        """Sequences queued and not started."""

    @abstractmethod
    def _active_count(self) -> int:
        """Sequences being decoded now."""

    # ----- helpers for subclasses -------------------------------------------------------------
    def _check_request_size(self, n: int) -> None:
        if n > self.max_queue:
            raise ValueError(f"{n} sequences in one request exceed the queue bound {self.max_queue}; "
                             "split the request")

    def _enqueue(self, waiting, items: list, n_seqs: int) -> None:
        """Append `items` (carrying `n_seqs` sequences) to the `waiting` deque, all or none."""
        with self._cond:
            if self._stop:
                raise RuntimeError(f"the engine of {self.name} is shut down")
            queued = self._waiting_count()
            if queued + n_seqs > self.max_queue:
                self.counters["rejected"] += 1
                raise QueueFull(f"{self.name}: {queued} sequences are already waiting "
                                f"(queue bound {self.max_queue}); retry later")
            waiting.extend(items)
            self.counters["submitted"] += n_seqs
            self._cond.notify_all()

    def _emit(self, seq: Seq, event: Event) -> None:
        key = id(seq.sink)
        if key not in self._out:
            self._out[key] = (seq.sink, [])
        self._out[key][1].append(event)

    def _flush(self) -> None:
        out, self._out = self._out, {}
        hand_out(out.values())

    def _finish(self, seq: Seq, reason: str, error: str | None = None) -> None:
        seq.done = True
        self.counters["cancelled" if reason == "cancelled" else "finished"] += 1
        self._emit(seq, Event(seq.index, finish=reason, error=error))
