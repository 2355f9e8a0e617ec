"""Which tokens of a rendered conversation come from assistant turns (the tokens chat fine-tuning trains on).

Two ways, for any template:

* a template with ``{% generation %}`` blocks marks the assistant text itself (transformers'
  ``return_assistant_tokens_mask``);
* otherwise each assistant turn is found by rendering prefixes of the conversation and taking the
  difference, as TRL does for prompt-completion data: the turn at ``messages[i]`` is the text that
  ``messages[:i+1]`` adds to ``messages[:i]`` rendered with the generation prompt, i.e. what the model
  must produce after the prompt it sees at inference, end-of-turn token included. This needs a template
  that does not rewrite earlier turns when later ones are added; one that does is an error that says so.

Character spans become a token mask through the tokenizer's offsets: a token that overlaps a span is an
assistant token (the rule transformers uses).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Span = tuple[int, int]
Render = Callable[[Sequence[Mapping[str, Any]], bool], tuple[str, list[Span]]]


@dataclass
class ChatEncoding:
    """A rendered conversation: its ``text``, ``input_ids`` and a 0/1 ``assistant_mask`` per id, with the
    assistant character ``spans`` of the text the mask came from."""

    text: str
    input_ids: list[int]
    assistant_mask: list[int]
    spans: list[Span]

    def __len__(self) -> int:
        return len(self.input_ids)


def assistant_spans(render: Render, messages: Sequence[Mapping[str, Any]], uses_generation_blocks: bool,
                    completion_from: int | None = None) -> tuple[str, list[Span]]:
    """(text of the whole conversation, character spans of its assistant turns).

    ``render(messages, add_generation_prompt)`` returns (text, generation-block spans). With
    ``completion_from=k`` only text after the prompt ``messages[:k]`` (rendered with the generation
    prompt) counts: the completion of a prompt-completion pair.
    """
    messages = list(messages)
    text, spans = render(messages, False)
    if not uses_generation_blocks:
        spans = _prefix_spans(render, messages, text)
    if completion_from is not None:
        prompt = _prefix(render, messages, completion_from, text)
        spans = [(max(s, prompt), e) for s, e in spans if e > prompt]
    return text, spans


def _prefix(render: Render, messages: list, k: int, text: str) -> int:
    """Length of the text of ``messages[:k]`` with the generation prompt, checked to prefix ``text``."""
    prompt, _ = render(messages[:k], True)
    if not text.startswith(prompt):
        raise ValueError(_unstable(k, "with the generation prompt"))
    return len(prompt)


def _prefix_spans(render: Render, messages: list, text: str) -> list[Span]:
    spans = []
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        start = _prefix(render, messages, i, text) if i else 0
        upto, _ = render(messages[: i + 1], False)
        if not text.startswith(upto):
            raise ValueError(_unstable(i + 1, ""))
        if len(upto) > start:
            spans.append((start, len(upto)))
    return spans


def _unstable(k: int, how: str) -> str:
    return (f"cannot locate the assistant turns: the chat template renders messages[:{k}] {how} as text that "
            "is not a prefix of the whole conversation (it rewrites earlier turns when later ones are added, "
            "e.g. moves the system message or drops reasoning). Use a template that marks assistant text with "
            "{% generation %} ... {% endgeneration %} blocks.").replace("  ", " ")


def mask_from_offsets(offsets: Sequence[Span], spans: Sequence[Span]) -> list[int]:
    """1 for each token whose (start, end) character range overlaps one of ``spans``, else 0."""
    spans = sorted(spans)
    mask, j = [], 0
    for start, end in offsets:
        while j < len(spans) and spans[j][1] <= start:
            j += 1
        hit = j < len(spans) and end > spans[j][0] and start < spans[j][1]
        mask.append(int(hit))
    return mask
