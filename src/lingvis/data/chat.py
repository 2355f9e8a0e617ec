"""Read conversations and preference pairs from the JSONL forms users bring.

Conversations (one per row):
  * OpenAI / TRL: ``{"messages": [{"role": "system"|"user"|"assistant"|"tool", "content": "..."}, ...]}``
  * ShareGPT: ``{"conversations": [{"from": "human"|"gpt"|"system"|..., "value": "..."}], "system": "..."}``
  * TRL prompt-completion: ``{"prompt": str | messages, "completion": str | messages}``
Preference pairs (one per row), for DPO:
  * ``{"prompt": str, "chosen": str, "rejected": str}``
  * ``{"prompt": messages, "chosen": messages, "rejected": messages}``
  * ``{"chosen": messages, "rejected": messages}``: the prompt is their common leading messages (TRL's
    implicit prompt).
Files are ``.jsonl`` / ``.ndjson`` (one object per line) or ``.json`` (a list of objects). Every error names
the file, the line (or record) and the field.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from .tasks_text import JSONL_SUFFIXES, TaskDataError, _jsonl_records

ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "model": "assistant", "system": "system", "tool": "tool",
                  "observation": "tool", "function_response": "tool", "function_call": "assistant"}


class ChatDataError(TaskDataError):
    """Bad conversation or preference data; the message names the file, line and field."""


@dataclass
class Conversation:
    """Messages ``{"role", "content"}`` of one conversation; ``source`` is "file:line"."""

    messages: list[dict[str, str]]
    source: str = ""
    tools: list[dict] | None = None

    def to_row(self) -> dict:
        row: dict[str, Any] = {"messages": self.messages}
        if self.tools:
            row["tools"] = self.tools
        return row


@dataclass
class PreferencePair:
    """A prompt (messages) and two alternative assistant continuations, ``chosen`` preferred."""

    prompt: list[dict[str, str]]
    chosen: list[dict[str, str]]
    rejected: list[dict[str, str]]
    source: str = ""
    meta: dict = field(default_factory=dict)

    def to_row(self) -> dict:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}


# ----- messages --------------------------------------------------------------------------------
def _text(value: Any, where: str) -> str:
    """Message content: a string, or a list of text parts ``[{"type": "text", "text": ...}]``."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for j, part in enumerate(value):
            if not (isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str)):
                raise ChatDataError(f"{where}[{j}]: only text parts {{'type': 'text', 'text': str}} are supported, "
                                    f"got {json.dumps(part, ensure_ascii=False)[:80]}")
            parts.append(part["text"])
        return "".join(parts)
    raise ChatDataError(f"{where} must be a string, got {type(value).__name__}")


def parse_messages(value: Any, where: str, field_name: str = "messages") -> list[dict[str, str]]:
    """Validate an OpenAI-style message list; errors name ``where`` and the message index."""
    if not isinstance(value, list) or not value:
        raise ChatDataError(f"{where}: {field_name!r} must be a non-empty list of messages, got "
                            f"{'an empty list' if value == [] else type(value).__name__}")
    out = []
    for i, m in enumerate(value):
        at = f"{where}: {field_name}[{i}]"
        if not isinstance(m, dict):
            raise ChatDataError(f"{at} must be an object with 'role' and 'content', got {type(m).__name__}")
        for key in ("role", "content"):
            if key not in m or m[key] is None:
                raise ChatDataError(f"{at} has no {key!r} (keys: {', '.join(sorted(m)) or 'none'})")
        if m["role"] not in ROLES:
            raise ChatDataError(f"{at} has role {m['role']!r}; expected one of {', '.join(ROLES)}")
        out.append({"role": m["role"], "content": _text(m["content"], f"{at}['content']")})
    return out


def parse_sharegpt(value: Any, where: str, system: Any = None) -> list[dict[str, str]]:
    """ShareGPT turns ``{"from", "value"}`` -> messages (human -> user, gpt -> assistant, ...)."""
    if not isinstance(value, list) or not value:
        raise ChatDataError(f"{where}: 'conversations' must be a non-empty list of turns")
    out = []
    if system is not None:
        out.append({"role": "system", "content": _text(system, f"{where}: 'system'")})
    for i, turn in enumerate(value):
        at = f"{where}: conversations[{i}]"
        if not isinstance(turn, dict):
            raise ChatDataError(f"{at} must be an object with 'from' and 'value', got {type(turn).__name__}")
        for key in ("from", "value"):
            if key not in turn or turn[key] is None:
                raise ChatDataError(f"{at} has no {key!r} (keys: {', '.join(sorted(turn)) or 'none'})")
        role = SHAREGPT_ROLES.get(turn["from"])
        if role is None:
            raise ChatDataError(f"{at} has 'from' {turn['from']!r}; expected one of {', '.join(SHAREGPT_ROLES)}")
        out.append({"role": role, "content": _text(turn["value"], f"{at}['value']")})
    return out


def _as_messages(value: Any, where: str, field_name: str, role: str) -> list[dict[str, str]]:
    """A string is one message of ``role``; a list is messages."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return parse_messages(value, where, field_name)


def _need_assistant(messages: list[dict], where: str, what: str = "conversation") -> None:
    if not any(m["role"] == "assistant" and m["content"] for m in messages):
        raise ChatDataError(f"{where}: the {what} has no non-empty assistant message, so nothing to train on")


# ----- conversations ---------------------------------------------------------------------------
def conversation_from_row(row: dict, where: str) -> Conversation:
    """One row in any of the conversation forms."""
    if "messages" in row:
        messages = parse_messages(row["messages"], where)
    elif "conversations" in row:
        messages = parse_sharegpt(row["conversations"], where, row.get("system"))
    elif "prompt" in row and "completion" in row:
        messages = _as_messages(row["prompt"], where, "prompt", "user") + \
            _as_messages(row["completion"], where, "completion", "assistant")
    else:
        raise ChatDataError(f"{where}: expected a 'messages' list (OpenAI/TRL), 'conversations' (ShareGPT) or "
                            f"'prompt' + 'completion'; keys present: {', '.join(sorted(row)) or 'none'}")
    _need_assistant(messages, where)
    tools = row.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        raise ChatDataError(f"{where}: 'tools' must be a list of JSON schema objects")
    return Conversation(messages, where, tools)


def _records(path: str | Path) -> Iterable[tuple[str, dict]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"chat data not found: {path}")
    if path.suffix.lower() not in JSONL_SUFFIXES:
        raise ChatDataError(f"{path}: unknown format {path.suffix!r}; use .jsonl, .ndjson or .json")
    for line, row in _jsonl_records(path):
        yield (f"{path}:{line}" if isinstance(line, int) else f"{path}: {line}"), row


def read_conversations(path: str | Path) -> list[Conversation]:
    """Every conversation of a JSONL/JSON file; an empty file is an error."""
    out = [conversation_from_row(row, where) for where, row in _records(path)]
    if not out:
        raise ChatDataError(f"{path}: no conversations")
    return out


# ----- preference pairs ------------------------------------------------------------------------
def preference_from_row(row: dict, where: str) -> PreferencePair:
    """One DPO row: explicit prompt (string or messages) or the implicit common prefix of the two."""
    for key in ("chosen", "rejected"):
        if key not in row or row[key] is None:
            raise ChatDataError(f"{where}: missing {key!r} (keys present: {', '.join(sorted(row)) or 'none'})")
    if "prompt" in row and row["prompt"] is not None:
        prompt = _as_messages(row["prompt"], where, "prompt", "user")
        chosen = _as_messages(row["chosen"], where, "chosen", "assistant")
        rejected = _as_messages(row["rejected"], where, "rejected", "assistant")
    else:
        full_c, full_r = (parse_messages(row[k], where, k) for k in ("chosen", "rejected"))
        n = 0
        while n < min(len(full_c), len(full_r)) - 1 and full_c[n] == full_r[n]:
            n += 1
        if n == 0:
            raise ChatDataError(f"{where}: without a 'prompt', 'chosen' and 'rejected' must start with the same "
                                "prompt messages")
        prompt, chosen, rejected = full_c[:n], full_c[n:], full_r[n:]
    if prompt[-1]["role"] == "assistant":
        raise ChatDataError(f"{where}: 'prompt' must end with a user (or system/tool) message, not an assistant one")
    for name, msgs in (("chosen", chosen), ("rejected", rejected)):
        _need_assistant(msgs, where, f"{name!r} completion")
    if chosen == rejected:
        raise ChatDataError(f"{where}: 'chosen' and 'rejected' are identical, so there is no preference to learn")
    return PreferencePair(prompt, chosen, rejected, where)


def read_preferences(path: str | Path) -> list[PreferencePair]:
    """Every preference pair of a JSONL/JSON file; an empty file is an error."""
    out = [preference_from_row(row, where) for where, row in _records(path)]
    if not out:
        raise ChatDataError(f"{path}: no preference pairs")
    return out


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write rows as JSON lines (UTF-8), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path
