"""What every served model kind shares: a name, its capabilities, and a bounded gate for blocking work."""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import anyio.to_thread

from ..config import ServeConfig
from ..errors import QueueFull

T = TypeVar("T")

# capability names, used by the routes and shown in /v1/models
COMPLETIONS, CHAT, TOKENIZE, EMBEDDINGS = "completions", "chat", "tokenize", "embeddings"
ZERO_SHOT, IMAGE_SEARCH, CAPTION, VQA = "zero_shot", "image_search", "caption", "vqa"


class Adapter:
    """Wraps one loaded model for the HTTP layer. Subclasses set `capabilities` and implement the
    methods the matching routes call (see causal_lm.py, embedding.py, ...)."""

    kind: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    needs_tokenizer: ClassVar[bool] = True

    def __init__(self, name: str, model, tokenizer, path: Path, config: ServeConfig):
        if self.needs_tokenizer and tokenizer is None:
            raise ValueError(f"model {name!r} ({path}) has no tokenizer (tokenizer.json); "
                             f"a {self.kind} model needs one to be served")
        self.name, self.model, self.tokenizer, self.path, self.config = name, model.eval(), tokenizer, path, config
        self.gate = WorkGate(config.max_queue, name)

    def start(self) -> None:
        """Start background work (the batching engine); called once the server starts."""

    def close(self) -> None:
        """Stop background work."""

    def describe(self) -> dict[str, Any]:
        """Extra fields for this model's /v1/models entry."""
        return {"kind": self.kind, "capabilities": sorted(self.capabilities), "family": self.model.family}

    def stats(self) -> dict[str, Any]:
        return {"in_flight": self.gate.in_flight}

    def queue_depth(self) -> int:
        """Requests (or sequences) waiting for the model: the /metrics queue gauge."""
        return self.gate.in_flight

    def batch_sizes(self) -> dict[int, int] | None:
        """Rows per batched model call -> calls so far (the /metrics histogram); None when not batched."""
        return None

    async def blocking(self, fn: Callable[..., T], *args) -> T:
        """Run model work off the event loop, one call at a time per model, at most `max_queue` waiting."""
        return await self.gate.run(fn, *args)


class WorkGate:
    """Admit at most `limit` concurrent calls (429 beyond), executing them one at a time in a thread."""

    def __init__(self, limit: int, name: str):
        self.limit, self.name, self.in_flight = limit, name, 0
        self._lock = threading.Lock()

    def _locked(self, fn, *args):
        with self._lock:
            return fn(*args)

    async def run(self, fn: Callable[..., T], *args) -> T:
        if self.in_flight >= self.limit:
            raise QueueFull(f"{self.name}: {self.in_flight} requests are already queued "
                            f"(queue bound {self.limit}); retry later")
        self.in_flight += 1
        try:
            return await anyio.to_thread.run_sync(self._locked, fn, *args)
        finally:
            self.in_flight -= 1
