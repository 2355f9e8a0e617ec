"""Incremental detokenisation of one generated sequence, with stop strings (shared with
`text_generation`: text that could still grow into a stop string is held back)."""
from __future__ import annotations

from collections.abc import Sequence

from ..text_generation import _held_back, _stop_at


class TextTracker:
    """Feed token ids one by one; `add` returns the text that is now safe to show."""

    def __init__(self, tokenizer, stop: Sequence[str] = ()):
        self.tokenizer, self.stop = tokenizer, [s for s in stop if s]
        self.ids: list[int] = []
        self.sent = 0
        self.text = ""
        self.stopped = False

    def add(self, token: int) -> str:
        if self.stopped:
            return ""
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next byte
            return ""
        cut = _stop_at(text, self.stop)
        if cut is not None:
            self.stopped, self.text = True, text[:cut]
            return self._take(cut)
        self.text = text
        return self._take(len(text) - _held_back(text, self.stop))

    def finish(self) -> str:
        """Whatever is left once the sequence has ended."""
        if not self.stopped:
            self.text = self.tokenizer.decode(self.ids)
        return self._take(len(self.text))

    def _take(self, upto: int) -> str:
        if upto <= self.sent:
            return ""
        piece, self.sent = self.text[self.sent:upto], upto
        return piece


def token_text(tokenizer, token: int) -> str:
    """The text of one token as OpenAI's `logprobs.tokens` shows it."""
    return tokenizer.decode([token], skip_special_tokens=False)
