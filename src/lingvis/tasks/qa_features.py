"""Extractive QA features and answer decoding.

A question and its context become one or more windows `[CLS] question [SEP] context-window [SEP]`:
contexts longer than the window are covered by sliding windows that overlap by `stride` tokens. The
training target of a window that does not contain the whole answer (and of an unanswerable question)
is [CLS] (position 0). Decoding takes the best-scoring span (start logit + end logit) over all windows;
for models trained with unanswerable questions it answers "" when the [CLS] score beats the best span
by more than `null_threshold`."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.tasks_text import QAExample
from .bert_inputs import special_ids


@dataclass
class QAWindows:
    max_len: int = 384
    stride: int = 128          # tokens shared by consecutive windows
    max_query_len: int = 64
    max_answer_len: int = 30   # tokens
    n_best: int = 20


def _answer_tokens(offsets: list[tuple[int, int]], char_start: int, char_end: int) -> tuple[int, int] | None:
    """First and last context token overlapping [char_start, char_end)."""
    toks = [i for i, (s, e) in enumerate(offsets) if e > char_start and s < char_end]
    return (toks[0], toks[-1]) if toks else None


def encode_qa(tokenizer, examples: list[QAExample], cfg: QAWindows) -> list[dict]:
    """Window features: {ids, types, example, ctx_start, offsets, start_pos, end_pos}."""
    cls, sep = special_ids(tokenizer)
    feats = []
    for e_i, ex in enumerate(examples):
        q = tokenizer.encode(ex.question)[:cfg.max_query_len]
        enc = tokenizer.backend.encode(ex.context, add_special_tokens=False)
        ctx, offsets = enc.ids, [tuple(o) for o in enc.offsets]
        budget = cfg.max_len - len(q) - 3
        if budget < 8:
            raise ValueError(f"{ex.source}: max_len {cfg.max_len} leaves {budget} context tokens after a "
                             f"{len(q)}-token question; raise max_len or lower max_query_len")
        step = budget - cfg.stride
        if step < 1:
            raise ValueError(f"stride {cfg.stride} must be smaller than the context window ({budget} tokens)")
        span = None
        if ex.answers:
            text, start = ex.answers[0]
            span = _answer_tokens(offsets, start, start + len(text))
            if span is None:
                raise ValueError(f"{ex.source}: answer {text!r} covers no context token")
        w = 0
        while True:
            end = min(w + budget, len(ctx))
            ctx_start = len(q) + 2
            start_pos = end_pos = 0
            if span is not None and span[0] >= w and span[1] < end:
                start_pos, end_pos = ctx_start + span[0] - w, ctx_start + span[1] - w
            feats.append({"ids": [cls, *q, sep, *ctx[w:end], sep], "types": [0] * ctx_start + [1] * (end - w + 1),
                          "example": e_i, "ctx_start": ctx_start, "offsets": offsets[w:end],
                          "start_pos": start_pos, "end_pos": end_pos})
            if end >= len(ctx):
                break
            w += step
    return feats


def best_span(start: torch.Tensor, end: torch.Tensor, feat: dict, cfg: QAWindows) -> tuple[float, int, int] | None:
    """(score, char start, char end) of the best context span in one window, or None."""
    lo, n = feat["ctx_start"], len(feat["offsets"])
    if n == 0:
        return None
    s_logits, e_logits = start[lo:lo + n], end[lo:lo + n]  # (n,)
    k = min(cfg.n_best, n)
    best = None
    for s in s_logits.topk(k).indices.tolist():
        for e in e_logits.topk(k).indices.tolist():
            if e < s or e - s + 1 > cfg.max_answer_len:
                continue
            score = float(s_logits[s] + e_logits[e])
            if best is None or score > best[0]:
                best = (score, feat["offsets"][s][0], feat["offsets"][e][1])
    return best


def decode_answers(examples: list[QAExample], feats: list[dict], starts: list[torch.Tensor],
                   ends: list[torch.Tensor], cfg: QAWindows, no_answer: bool,
                   null_threshold: float = 0.0) -> dict[int, dict]:
    """Per example index: {"answer", "score", "start", "end", "null_score", "no_answer"}."""
    spans: dict[int, tuple] = {}
    nulls: dict[int, float] = {}
    for f, s, e in zip(feats, starts, ends):
        i = f["example"]
        null = float(s[0] + e[0])
        nulls[i] = min(nulls.get(i, null), null)
        cand = best_span(s, e, f, cfg)
        if cand is not None and (i not in spans or cand[0] > spans[i][0]):
            spans[i] = cand
    out = {}
    for i, null in nulls.items():
        ex, cand = examples[i], spans.get(i)
        empty = cand is None or (no_answer and null > cand[0] + null_threshold)
        if empty:
            out[i] = {"answer": "", "score": null, "start": None, "end": None, "null_score": null, "no_answer": True}
        else:
            score, a, b = cand
            out[i] = {"answer": ex.context[a:b], "score": score, "start": a, "end": b, "null_score": null,
                      "no_answer": False}
    return out
