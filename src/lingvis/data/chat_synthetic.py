"""Built-in chat data where the right answer follows from the prompt: reverse, sort, count and lookup tasks
in multi-turn conversations, with a held-out split, plus a preference set for DPO.

* ``reverse: kdqa`` -> ``aqdk``; ``sort: 7 3 9 1`` -> ``1 3 7 9``; ``count b in cabbdb`` -> ``3``;
  ``k=7 m=2 q=5; m?`` -> ``2``.
* A conversation has an optional system message and 1-3 turns; each user turn is a fresh task.
* Splits are seeded and disjoint: no held-out conversation's final prompt appears anywhere in training.
* ``style="mixed"`` answers half of the turns verbosely (``The answer is 3.``); the preference set pairs
  the concise answer (chosen) with the verbose one (rejected) for the same prompt, so DPO teaches a model
  that learnt both styles to answer concisely.
"""
from __future__ import annotations

import random
import string
from collections.abc import Callable

from .chat import Conversation, PreferencePair

TASKS = ("reverse", "sort", "count", "lookup")
SYSTEM_PROMPT = "You are a precise assistant."
VERBOSE = "The answer is {}."
SPLIT_SEEDS = {"train": 0, "test": 1, "pref_train": 2, "pref_test": 3}


def _reverse(rng: random.Random) -> tuple[str, str]:
    word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 5)))
    return f"reverse: {word}", word[::-1]


def _sort(rng: random.Random) -> tuple[str, str]:
    digits = [rng.choice(string.digits) for _ in range(rng.randint(3, 5))]
    return f"sort: {' '.join(digits)}", " ".join(sorted(digits))


def _count(rng: random.Random) -> tuple[str, str]:
    letters = "abcd"
    word = "".join(rng.choice(letters) for _ in range(rng.randint(4, 7)))
    target = rng.choice(letters)
    return f"count {target} in {word}", str(word.count(target))


def _lookup(rng: random.Random) -> tuple[str, str]:
    keys = rng.sample(string.ascii_lowercase, rng.randint(3, 4))
    values = [rng.choice(string.digits) for _ in keys]
    asked = rng.randrange(len(keys))
    pairs = " ".join(f"{k}={v}" for k, v in zip(keys, values))
    return f"{pairs}; {keys[asked]}?", values[asked]


MAKERS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "reverse": _reverse, "sort": _sort, "count": _count, "lookup": _lookup}


def task_example(rng: random.Random, tasks: tuple[str, ...] = TASKS,
                 weights: tuple[float, ...] | None = None) -> tuple[str, str, str]:
    """(task name, prompt, answer) drawn from ``tasks`` (uniformly, or by ``weights``)."""
    name = rng.choices(tasks, weights)[0] if weights else rng.choice(tasks)
    return (name, *MAKERS[name](rng))


def _answer(answer: str, rng: random.Random, style: str) -> str:
    verbose = rng.random() < 0.5  # drawn in every style, so the prompts of a split do not depend on the style
    if style == "plain":
        return answer
    if style == "verbose":
        return VERBOSE.format(answer)
    if style == "mixed":
        return VERBOSE.format(answer) if verbose else answer
    raise ValueError(f"style must be plain, verbose or mixed, got {style!r}")


def _conversation(rng: random.Random, max_turns: int, style: str, tasks: tuple[str, ...],
                  weights: tuple[float, ...] | None = None) -> tuple[list, str, str]:
    messages = [{"role": "system", "content": SYSTEM_PROMPT}] if rng.random() < 0.25 else []
    for _ in range(rng.randint(1, max_turns)):
        name, prompt, answer = task_example(rng, tasks, weights)
        messages += [{"role": "user", "content": prompt},
                     {"role": "assistant", "content": _answer(answer, rng, style)}]
    return messages, name, answer


def chat_split(split: str, n: int, *, style: str = "plain", max_turns: int = 3,
               tasks: tuple[str, ...] = TASKS, mix: dict[str, float] | None = None) -> list[Conversation]:
    """``n`` conversations of ``split`` (train | test). Test conversations never end with a prompt that
    occurs in the first 50,000 training conversations (far more than any run here uses).

    ``mix`` (train only) draws the tasks of the training conversations by these weights instead of
    uniformly (a training curriculum; the held-out split keeps the uniform mix). Such a training stream
    skips every conversation holding a final prompt of the first 5,000 held-out conversations."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, got {split!r}")
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise ValueError(f"unknown chat task(s) {unknown or '(none)'}; choose from {list(TASKS)}")
    weights = _weights(mix, tasks) if mix else None
    if weights and split != "train":
        raise ValueError("mix (task weights) is for the train split only; the held-out split keeps the uniform mix")
    rng = random.Random(SPLIT_SEEDS[split])
    blocked = _train_prompts(max_turns, tasks) if split == "test" else frozenset()
    held = _held_out_prompts(max_turns, tasks) if weights else frozenset()
    out = []
    while len(out) < n:
        messages, _, _ = _conversation(rng, max_turns, style, tasks, weights)
        if messages[-2]["content"] in blocked or (held and any(m["content"] in held for m in messages)):
            continue
        out.append(Conversation(messages, f"builtin:{split}:{len(out)}"))
    return out


def _weights(mix: dict[str, float], tasks: tuple[str, ...]) -> tuple[float, ...]:
    unknown = sorted(set(mix) - set(tasks))
    if unknown:
        raise ValueError(f"mix: unknown chat task(s) {unknown}; choose from {list(tasks)}")
    weights = tuple(float(mix.get(t, 0.0)) for t in tasks)
    if any(w < 0 for w in weights) or not sum(weights) > 0:
        raise ValueError(f"mix: weights must be >= 0 with a positive sum, got {mix}")
    return weights


_HELD_OUT_PROMPTS: dict[tuple, frozenset[str]] = {}


def _held_out_prompts(max_turns: int, tasks: tuple[str, ...], n: int = 5_000) -> frozenset[str]:
    """The final prompts of the first ``n`` held-out conversations (what a re-weighted training stream avoids)."""
    key = (max_turns, tasks, n)
    if key not in _HELD_OUT_PROMPTS:
        _HELD_OUT_PROMPTS[key] = frozenset(c.messages[-2]["content"]
                                           for c in chat_split("test", n, max_turns=max_turns, tasks=tasks))
    return _HELD_OUT_PROMPTS[key]


_TRAIN_PROMPTS: dict[tuple, frozenset[str]] = {}


def _train_prompts(max_turns: int, tasks: tuple[str, ...], n: int = 50_000) -> frozenset[str]:
    """Every user prompt of the first ``n`` training conversations (style does not change prompts)."""
    key = (max_turns, tasks, n)
    if key not in _TRAIN_PROMPTS:
        rng = random.Random(SPLIT_SEEDS["train"])
        seen = set()
        for _ in range(n):
            messages, _, _ = _conversation(rng, max_turns, "mixed", tasks)
            seen.update(m["content"] for m in messages if m["role"] == "user")
        _TRAIN_PROMPTS[key] = frozenset(seen)
    return _TRAIN_PROMPTS[key]


def final_answer(conversation: Conversation) -> str:
    """The reference answer of a conversation: its last assistant message."""
    return conversation.messages[-1]["content"]


def preference_split(split: str, n: int, *, max_turns: int = 2, tasks: tuple[str, ...] = TASKS) -> list[PreferencePair]:
    """``n`` pairs of ``split`` (train | test): the prompt is a conversation up to its last user turn (earlier
    answers in either style); chosen = the concise answer, rejected = the verbose one. Test prompts never
    occur in training conversations or training pairs."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, got {split!r}")
    rng = random.Random(SPLIT_SEEDS[f"pref_{split}"])
    blocked = _train_prompts(3, TASKS) | _pref_train_prompts(max_turns, tasks) if split == "test" else frozenset()
    out = []
    while len(out) < n:
        messages, _, answer = _conversation(rng, max_turns, "mixed", tasks)
        prompt = messages[:-1]
        if prompt[-1]["content"] in blocked:
            continue
        out.append(PreferencePair(prompt, [{"role": "assistant", "content": answer}],
                                  [{"role": "assistant", "content": VERBOSE.format(answer)}],
                                  f"builtin:pref_{split}:{len(out)}", {"answer": answer}))
    return out


def _pref_train_prompts(max_turns: int, tasks: tuple[str, ...], n: int = 20_000) -> frozenset[str]:
    rng = random.Random(SPLIT_SEEDS["pref_train"])
    return frozenset(_conversation(rng, max_turns, "mixed", tasks)[0][-2]["content"] for _ in range(n))


def is_verbose(text: str) -> bool:
    """Whether a reply uses the verbose style the preference set rejects."""
    return text.strip().startswith(VERBOSE.split("{}")[0].strip())
