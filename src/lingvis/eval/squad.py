"""Official SQuAD v1.1 / v2.0 exact match and F1 (same normalisation and rules as the official
evaluation scripts). Scores are percentages (0-100), as the official scripts print them.

References may be the official dataset JSON ({'data': [...]}), its 'data' list of articles, or
a mapping {question_id: [gold answer texts]} (an empty list marks an unanswerable question).
Predictions are {question_id: answer text}; '' means "no answer" in v2.0."""
from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping

VERSIONS = ("v1.1", "v2.0")
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation, drop articles a/an/the, collapse whitespace."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Bag-of-tokens F1 of normalised answers; if either is empty, 1.0 only when both are."""
    p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def gold_answers(references: Any) -> dict[str, list[str]]:
    """{question_id: [answer texts]} from the official JSON, its 'data' list, or a mapping."""
    if isinstance(references, Mapping) and "data" in references:
        references = references["data"]
    if isinstance(references, Mapping):
        return {str(k): [str(a) for a in v] for k, v in references.items()}
    out: dict[str, list[str]] = {}
    for a, article in enumerate(references):
        for p, paragraph in enumerate(article.get("paragraphs", [])):
            for q, qa in enumerate(paragraph.get("qas", [])):
                if "id" not in qa or "answers" not in qa:
                    raise ValueError(f"data[{a}].paragraphs[{p}].qas[{q}] lacks 'id' or 'answers'")
                out[str(qa["id"])] = [ans["text"] for ans in qa["answers"]]
    return out


def _question_scores(prediction: str, golds: list[str], version: str) -> tuple[float, float]:
    """(EM, F1) of one prediction: max over gold answers, with the version's empty-gold rule."""
    if version == "v2.0":
        golds = [g for g in golds if normalize_answer(g)] or [""]
    elif not golds:
        raise ValueError("SQuAD v1.1 question without gold answers; use version='v2.0'")
    return max(exact_match(prediction, g) for g in golds), max(token_f1(prediction, g) for g in golds)


@dataclass
class SquadResult:
    """Overall and HasAns/NoAns EM and F1 (percent); counts; optional best-threshold scores."""

    exact: float
    f1: float
    total: int
    has_ans_exact: float | None = None
    has_ans_f1: float | None = None
    has_ans_total: int = 0
    no_ans_exact: float | None = None
    no_ans_f1: float | None = None
    no_ans_total: int = 0
    missing: int = 0
    best_exact: float | None = None
    best_exact_thresh: float | None = None
    best_f1: float | None = None
    best_f1_thresh: float | None = None


def _mean_pct(scores: dict[str, float], qids: list[str]) -> float | None:
    return 100.0 * sum(scores[q] for q in qids) / len(qids) if qids else None


def best_threshold(
    predictions: Mapping[str, str],
    scores: Mapping[str, float],
    na_probs: Mapping[str, float],
    has_ans: Mapping[str, bool],
) -> tuple[float, float]:
    """Official v2.0 search for the no-answer probability threshold: (best score %, threshold)."""
    cur = best = sum(1 for q in scores if not has_ans[q])
    thresh = 0.0
    for q in sorted(scores, key=lambda k: na_probs[k]):
        if has_ans[q]:
            cur += scores[q]
        else:
            cur += -1 if predictions.get(q, "") else 0
        if cur > best:
            best, thresh = cur, na_probs[q]
    return 100.0 * best / len(scores), thresh


def squad_evaluate(
    references: Any,
    predictions: Mapping[str, str],
    version: str = "v2.0",
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 1.0,
) -> SquadResult:
    """Score predictions. Missing predictions count as '' (0 for answerable questions). With
    `na_probs`, a question whose probability exceeds `na_prob_thresh` is scored as no-answer, and
    the best-threshold scores of the official v2.0 script are filled in."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    golds = gold_answers(references)
    if not golds:
        raise ValueError("references contain no questions")
    preds = {str(k): v for k, v in predictions.items()}
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    has_ans = {q: bool(g) for q, g in golds.items()}
    for q, g in golds.items():
        exact[q], f1[q] = _question_scores(preds.get(q, ""), g, version)
    raw_exact, raw_f1 = dict(exact), dict(f1)
    if na_probs is not None:
        na = {str(k): float(v) for k, v in na_probs.items()}
        lacking = [q for q in golds if q not in na]
        if lacking:
            raise ValueError(f"na_probs lacks {len(lacking)} question ids, e.g. {lacking[:3]}")
        for q in golds:
            if na[q] > na_prob_thresh:
                exact[q] = f1[q] = float(not has_ans[q])
    qids = list(golds)
    pos, neg = [q for q in qids if has_ans[q]], [q for q in qids if not has_ans[q]]
    result = SquadResult(
        exact=_mean_pct(exact, qids), f1=_mean_pct(f1, qids), total=len(qids),
        has_ans_exact=_mean_pct(exact, pos), has_ans_f1=_mean_pct(f1, pos), has_ans_total=len(pos),
        no_ans_exact=_mean_pct(exact, neg), no_ans_f1=_mean_pct(f1, neg), no_ans_total=len(neg),
        missing=sum(1 for q in qids if q not in preds),
    )
    if na_probs is not None:
        result.best_exact, result.best_exact_thresh = best_threshold(preds, raw_exact, na, has_ans)
        result.best_f1, result.best_f1_thresh = best_threshold(preds, raw_f1, na, has_ans)
    return result
