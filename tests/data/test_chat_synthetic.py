"""Built-in chat data: answers follow from the prompts, held-out prompts are unseen, preference pairs."""
from __future__ import annotations

import re

import pytest

from lingvis.data.chat_synthetic import (
    TASKS,
    VERBOSE,
    chat_split,
    final_answer,
    is_verbose,
    preference_split,
    task_example,
)


def _solve(prompt: str) -> str:
    """An independent solver for the four task kinds."""
    if prompt.startswith("reverse: "):
        return prompt[len("reverse: "):][::-1]
    if prompt.startswith("sort: "):
        return " ".join(sorted(prompt[len("sort: "):].split()))
    if m := re.fullmatch(r"count (\w) in (\w+)", prompt):
        return str(m.group(2).count(m.group(1)))
    pairs, key = prompt.rstrip("?").split("; ")
    return dict(p.split("=") for p in pairs.split())[key]


def test_answers_follow_from_prompts():
    convs = chat_split("train", 300)
    kinds = set()
    for c in convs:
        roles = [m["role"] for m in c.messages]
        assert roles[-2:] == ["user", "assistant"] and roles.count("user") in (1, 2, 3)
        for q, a in zip(c.messages[:-1], c.messages[1:]):
            if q["role"] == "user":
                assert a["content"] == _solve(q["content"])
                kinds.add(q["content"].split()[0])
    assert {"reverse:", "sort:", "count"} <= kinds and len(kinds) > 3  # lookups start with their first pair
    assert any(m["role"] == "system" for c in convs for m in c.messages)


def test_splits_are_deterministic_and_disjoint():
    assert [c.messages for c in chat_split("test", 50)] == [c.messages for c in chat_split("test", 50)]
    train_prompts = {m["content"] for c in chat_split("train", 5000) for m in c.messages if m["role"] == "user"}
    test = chat_split("test", 300)
    assert not {c.messages[-2]["content"] for c in test} & train_prompts


def test_styles_and_preferences():
    mixed = chat_split("train", 400, style="mixed")
    verbose = sum(is_verbose(m["content"]) for c in mixed for m in c.messages if m["role"] == "assistant")
    total = sum(m["role"] == "assistant" for c in mixed for m in c.messages)
    assert 0.4 < verbose / total < 0.6
    assert all(is_verbose(final_answer(c)) for c in chat_split("train", 20, style="verbose"))
    pairs = preference_split("test", 100)
    for p in pairs:
        answer = _solve(p.prompt[-1]["content"])
        assert p.chosen[0]["content"] == answer and p.rejected[0]["content"] == VERBOSE.format(answer)
    train_prompts = {p.prompt[-1]["content"] for p in preference_split("train", 2000)}
    assert not {p.prompt[-1]["content"] for p in pairs} & train_prompts


def test_bad_arguments():
    with pytest.raises(ValueError, match="split must be train or test"):
        chat_split("val", 3)
    with pytest.raises(ValueError, match=r"unknown chat task\(s\) \['add'\]"):
        chat_split("train", 3, tasks=("add",))
    with pytest.raises(ValueError, match="style must be plain, verbose or mixed"):
        chat_split("train", 3, style="loud")
    assert {task_example(__import__("random").Random(i))[0] for i in range(40)} == set(TASKS)


def test_weighted_training_mix_keeps_held_out_prompts_out():
    from collections import Counter

    def kind(prompt: str) -> str:
        return prompt.split()[0].rstrip(":") if prompt.startswith(("reverse", "sort", "count")) else "lookup"

    mix = {"reverse": 1, "sort": 1, "count": 1, "lookup": 3}
    convs = chat_split("train", 3000, mix=mix)
    kinds = Counter(kind(m["content"]) for c in convs for m in c.messages if m["role"] == "user")
    assert 0.45 < kinds["lookup"] / sum(kinds.values()) < 0.55 and min(kinds.values()) > 0
    for q, a in zip(*[[m["content"] for c in convs for m in c.messages if m["role"] == r]
                      for r in ("user", "assistant")]):
        assert a == _solve(q)
    held = {c.messages[-2]["content"] for c in chat_split("test", 5000)}
    assert not held & {m["content"] for c in convs for m in c.messages if m["role"] == "user"}
    # the uniform stream is unchanged, and only lookups with a zero weight elsewhere
    assert [c.messages for c in chat_split("train", 30)] == [c.messages for c in chat_split("train", 30, mix=None)]
    only = chat_split("train", 50, mix={"lookup": 1})
    assert {kind(m["content"]) for c in only for m in c.messages if m["role"] == "user"} == {"lookup"}
    with pytest.raises(ValueError, match=r"mix: unknown chat task\(s\) \['add'\]"):
        chat_split("train", 3, mix={"add": 1})
    with pytest.raises(ValueError, match="positive sum"):
        chat_split("train", 3, mix={"lookup": 0})
    with pytest.raises(ValueError, match="train split only"):
        chat_split("test", 3, mix={"lookup": 2})
