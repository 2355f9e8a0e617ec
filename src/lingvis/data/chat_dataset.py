"""Conversations -> training examples for chat fine-tuning: ids, labels on assistant tokens only, and
optional packing of several conversations into one row.

An example holds ``input_ids`` (T,) and ``labels`` (T,) where ``labels[t]`` is the next token when that
token belongs to an assistant turn, else -100 (ignored by the loss). Evaluation examples also keep the
prompt (the conversation up to its last assistant turn, with the generation prompt) and the reference
answer, for exact-match scoring by generation.

Packing fills rows of ``block_size`` tokens with whole conversations (best-fit decreasing, deterministic)
and gives every token its position within its own conversation and a document id; the task turns those
into a block-diagonal causal mask, so a conversation never attends to another one in its row.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from .chat import Conversation, PreferencePair

IGNORE = -100


@dataclass
class Encoded:
    """Encoded conversations and how many were dropped for not fitting ``max_len`` tokens."""

    examples: list[dict]
    dropped: int = 0
    longest: int = 0


def _labels(ids: list[int], mask: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Shifted (input_ids, labels): labels[t] = ids[t+1] where that token is an assistant token."""
    x = torch.tensor(ids[:-1], dtype=torch.long)  # (T,)
    y = torch.tensor([i if m else IGNORE for i, m in zip(ids[1:], mask[1:])], dtype=torch.long)  # (T,)
    return x, y


def encode_conversations(tokenizer, conversations: Sequence[Conversation], max_len: int | None = None,
                         with_prompts: bool = False) -> Encoded:
    """Render, encode and label each conversation; those longer than ``max_len`` tokens are dropped
    (counted). ``with_prompts`` adds ``prompt_ids`` and ``answer`` for conversations ending with an
    assistant turn."""
    out, dropped, longest = [], 0, 0
    for conv in conversations:
        try:
            enc = tokenizer.encode_chat(conv.messages, tools=conv.tools)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{conv.source}: {err}") from None
        longest = max(longest, len(enc))
        if max_len is not None and len(enc) > max_len:
            dropped += 1
            continue
        if not any(enc.assistant_mask[1:]):
            raise ValueError(f"{conv.source}: the rendered conversation has no assistant tokens to train on "
                             "(does the chat template drop assistant messages?)")
        x, y = _labels(enc.input_ids, enc.assistant_mask)
        example = {"input_ids": x, "labels": y}
        if with_prompts and conv.messages[-1]["role"] == "assistant":
            example["prompt_ids"] = tokenizer.apply_chat_template(conv.messages[:-1], add_generation_prompt=True,
                                                                  tools=conv.tools, tokenize=True)
            example["answer"] = conv.messages[-1]["content"]
        out.append(example)
    return Encoded(out, dropped, longest)


def pack_examples(examples: Sequence[dict], block_size: int) -> list[dict]:
    """Whole examples packed into rows of at most ``block_size`` tokens (best-fit decreasing). Each row has
    ``input_ids``, ``labels``, ``position_ids`` (restarting at 0 per conversation) and ``doc_ids``."""
    order = sorted(range(len(examples)), key=lambda i: (-len(examples[i]["input_ids"]), i))
    rows: list[list[int]] = []
    free: dict[int, list[int]] = {}  # free space -> rows with that much room left
    for i in order:
        n = len(examples[i]["input_ids"])
        if n > block_size:
            raise ValueError(f"an example of {n} tokens does not fit block_size={block_size}")
        room = next((r for r in range(n, block_size + 1) if free.get(r)), None)
        if room is None:
            rows.append([])
            row, room = len(rows) - 1, block_size
        else:
            row = free[room].pop()
        rows[row].append(i)
        free.setdefault(room - n, []).append(row)
    packed = []
    for members in rows:
        parts = [examples[i] for i in members]
        packed.append({
            "input_ids": torch.cat([p["input_ids"] for p in parts]),
            "labels": torch.cat([p["labels"] for p in parts]),
            "position_ids": torch.cat([torch.arange(len(p["input_ids"])) for p in parts]),
            "doc_ids": torch.cat([torch.full((len(p["input_ids"]),), d) for d, p in enumerate(parts)]),
        })
    return packed


class ListDataset(Dataset):
    """A dataset over a list of prepared examples."""

    def __init__(self, items: Sequence[dict]):
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def encode_preferences(tokenizer, pairs: Sequence[PreferencePair], max_len: int | None = None) -> Encoded:
    """Each pair -> ``chosen_*`` and ``rejected_*`` (input_ids, labels): prompt + completion, labels only on
    the completion's assistant tokens. Pairs where either side exceeds ``max_len`` tokens are dropped."""
    out, dropped, longest = [], 0, 0
    for pair in pairs:
        item, too_long = {}, False
        for side in ("chosen", "rejected"):
            messages = pair.prompt + getattr(pair, side)
            try:
                enc = tokenizer.encode_chat(messages, completion_from=len(pair.prompt))
            except (ValueError, TypeError) as err:
                raise ValueError(f"{pair.source}: {side}: {err}") from None
            longest = max(longest, len(enc))
            too_long |= max_len is not None and len(enc) > max_len
            if not any(enc.assistant_mask[1:]):
                raise ValueError(f"{pair.source}: the {side!r} completion renders to no assistant tokens")
            item[f"{side}_ids"], item[f"{side}_labels"] = _labels(enc.input_ids, enc.assistant_mask)
        if too_long:
            dropped += 1
            continue
        item["prompt_ids"] = tokenizer.apply_chat_template(pair.prompt, add_generation_prompt=True, tokenize=True)
        out.append(item)
    return Encoded(out, dropped, longest)
