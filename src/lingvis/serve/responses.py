"""Response bodies in the OpenAI shape for completions and chat (whole answers and stream chunks)."""
from __future__ import annotations

import time
import uuid

from .detok import token_text
from .sequences import TopList
from .textjob import Choice


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def _top_dict(tokenizer, top: TopList | None) -> dict[str, float] | None:
    if top is None:
        return None
    out: dict[str, float] = {}
    for tok, lp in top:
        out.setdefault(token_text(tokenizer, tok), lp)
    return out


def completion_logprobs(tokenizer, ids: list[int], lps: list, tops: list, start: int) -> dict:
    """The legacy `logprobs` object: tokens, token_logprobs, top_logprobs, text_offset."""
    texts = [token_text(tokenizer, t) for t in ids]
    offsets, pos = [], start
    for t in texts:
        offsets.append(pos)
        pos += len(t)
    return {"tokens": texts, "token_logprobs": lps, "top_logprobs": [_top_dict(tokenizer, t) for t in tops],
            "text_offset": offsets}


def completion_choice(tokenizer, ch: Choice, echo: bool, want_logprobs: bool, prompt_text: str) -> dict:
    text = (prompt_text if echo else "") + ch.tracker.text
    logprobs = None
    if want_logprobs:
        ids, lps, tops = list(ch.tokens), list(ch.logprobs), list(ch.tops)
        if echo:
            scores = ch.prompt_scores or [(None, None)] * len(ch.prompt)
            ids = ch.prompt + ids
            lps = [s[0] for s in scores] + lps
            tops = [s[1] for s in scores] + tops
        logprobs = completion_logprobs(tokenizer, ids, lps, tops, 0 if echo else len(prompt_text))
    return {"index": ch.index, "text": text, "logprobs": logprobs, "finish_reason": ch.finish}


def completion(rid: str, model: str, choices: list[dict], usage: dict) -> dict:
    return {"id": rid, "object": "text_completion", "created": now(), "model": model, "choices": choices,
            "usage": usage}


def completion_chunk(rid: str, model: str, index: int, text: str, finish: str | None,
                     logprobs: dict | None = None) -> dict:
    return {"id": rid, "object": "text_completion", "created": now(), "model": model,
            "choices": [{"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}]}


def chat_logprobs(tokenizer, ids: list[int], lps: list[float], tops: list[TopList]) -> dict:
    def entry(tok: int, lp: float) -> dict:
        text = token_text(tokenizer, tok)
        return {"token": text, "logprob": lp, "bytes": list(text.encode("utf-8"))}

    return {"content": [{**entry(t, lp), "top_logprobs": [entry(a, b) for a, b in top]}
                        for t, lp, top in zip(ids, lps, tops)], "refusal": None}


def chat_completion(rid: str, model: str, choices: list[Choice], tokenizer, want_logprobs: bool,
                    usage: dict) -> dict:
    out = [{"index": c.index, "message": {"role": "assistant", "content": c.tracker.text, "refusal": None},
            "logprobs": chat_logprobs(tokenizer, c.tokens, c.logprobs, c.tops) if want_logprobs else None,
            "finish_reason": c.finish} for c in choices]
    return {"id": rid, "object": "chat.completion", "created": now(), "model": model, "choices": out,
            "usage": usage}


def chat_chunk(rid: str, model: str, index: int, delta: dict, finish: str | None,
               logprobs: dict | None = None) -> dict:
    return {"id": rid, "object": "chat.completion.chunk", "created": now(), "model": model,
            "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}


def usage_chunk(rid: str, model: str, obj: str, usage: dict) -> dict:
    return {"id": rid, "object": obj, "created": now(), "model": model, "choices": [], "usage": usage}
