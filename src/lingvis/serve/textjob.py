"""One completion or chat request in flight: per-choice text, tokens, log-probabilities and finish."""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from .detok import TextTracker
from .errors import APIError
from .runs import Run
from .sequences import TopList


@dataclass
class Choice:
    index: int
    prompt: list[int]
    tracker: TextTracker
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    tops: list[TopList] = field(default_factory=list)
    prompt_scores: list | None = None
    finish: str | None = None


class TextJob:
    """Consume a `Run`; choice i generates from prompt i // n."""

    def __init__(self, tokenizer, run: Run, prompts: list[list[int]], n: int, stop: list[str], observer=None):
        self.run, self.tokenizer, self.observer = run, tokenizer, observer
        self.choices = [Choice(i, prompts[i // n], TextTracker(tokenizer, stop)) for i in range(len(prompts) * n)]
        self.prompt_tokens = sum(len(p) for p in prompts)

    async def updates(self) -> AsyncIterator[list[tuple[Choice, str, bool]]]:
        """Lists of (choice, newly visible text, whether a token arrived); `choice.finish` is set on the
        update that ends the choice (stop string, end token or length). The `observer` (metrics.JobObserver)
        hears of the first token and of the end, also when the client leaves early."""
        try:
            async for batch in self.run.batches():
                out = []
                for ev in batch:
                    update = self._apply(ev)
                    if update is not None:
                        out.append(update)
                if out:
                    if self.observer is not None and any(had for _, _, had in out):
                        self.observer.first_token()
                    yield out
        finally:
            if self.observer is not None:
                self.observer.done(self.usage())

    def _apply(self, ev) -> tuple[Choice, str, bool] | None:
        ch = self.choices[ev.index]
        if ch.finish is not None:  # ended by a stop string; later events are stale
            return None
        if ev.prompt_logprobs is not None:
            ch.prompt_scores = ev.prompt_logprobs
            return None
        if ev.token is not None:
            ch.tokens.append(ev.token)
            if ev.logprob is not None:
                ch.logprobs.append(ev.logprob)
                ch.tops.append(ev.top or [])
            piece = ch.tracker.add(ev.token)
            if ch.tracker.stopped:
                self.run.cancel(ch.index)
                ch.finish = "stop"
            return ch, piece, True
        if ev.finish == "error":
            raise APIError(500, f"generation failed: {ev.error}", "server_error", None, "generation_error")
        ch.finish = ev.finish
        return ch, ch.tracker.finish(), False

    async def collect(self) -> list[Choice]:
        async for _ in self.updates():
            pass
        return self.choices

    def usage(self) -> dict:
        done = sum(len(c.tokens) for c in self.choices)
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": done,
                "total_tokens": self.prompt_tokens + done}
