"""Captioning metrics BLEU-1..4 and CIDEr-D, computed exactly as the COCO caption evaluation
(pycocoevalcap's Bleu and Cider scorers), on our own simple tokenisation instead of the Java PTB
tokenizer. Scales follow pycocoevalcap: BLEU in [0, 1]; CIDEr-D usually in [0, ~10]."""
from __future__ import annotations

import math
import string
from collections import Counter
from typing import Mapping, Sequence

Ngrams = Counter  # Counter[tuple[str, ...]] of all 1..n-grams of one sentence
_PUNCT_TO_SPACE = str.maketrans({ch: " " for ch in string.punctuation})
# Smoothing constants of the COCO BLEU scorer (they make BLEU-n tiny, not 0, without n-gram hits).
BLEU_TINY, BLEU_SMALL = 1e-15, 1e-9


def caption_tokenize(text: str) -> list[str]:
    """Lower-case, turn every ASCII punctuation mark into a space, split on whitespace."""
    return text.lower().translate(_PUNCT_TO_SPACE).split()


def _ngrams(words: Sequence[str], n: int) -> Ngrams:
    return Counter(tuple(words[i:i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


def _prepare(
    references: Mapping[object, Sequence[str]], candidates: Mapping[object, object], tokenize: bool
) -> list[tuple[object, list[str], list[list[str]]]]:
    """[(id, candidate words, [reference words])] in references' key order, validated."""
    if set(references) != set(candidates):
        only_r, only_c = set(references) - set(candidates), set(candidates) - set(references)
        raise ValueError(f"ids differ: only in references {sorted(map(str, only_r))[:3]}, "
                         f"only in candidates {sorted(map(str, only_c))[:3]}")
    if not references:
        raise ValueError("no captions to score")
    split = caption_tokenize if tokenize else str.split
    out = []
    for key, refs in references.items():
        cand = candidates[key]
        if isinstance(cand, (list, tuple)):
            if len(cand) != 1:
                raise ValueError(f"candidates[{key!r}]: expected one caption, got {len(cand)}")
            cand = cand[0]
        if isinstance(refs, str) or not refs:
            raise ValueError(f"references[{key!r}]: expected a non-empty list of captions")
        out.append((key, split(str(cand)), [split(r) for r in refs]))
    return out


def _bleu_from_counts(correct: list[float], guess: list[float], testlen: float, reflen: float) -> list[float]:
    """Cumulative BLEU-1..n (geometric mean of precisions 1..k) with the brevity penalty."""
    scores, prod = [], 1.0
    for k in range(len(correct)):
        prod *= (correct[k] + BLEU_TINY) / (guess[k] + BLEU_SMALL)
        scores.append(prod ** (1.0 / (k + 1)))
    ratio = (testlen + BLEU_TINY) / (reflen + BLEU_SMALL)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


def bleu(
    references: Mapping[object, Sequence[str]],
    candidates: Mapping[object, object],
    n: int = 4,
    tokenize: bool = True,
) -> tuple[list[float], dict[object, list[float]]]:
    """Corpus BLEU-1..n and per-caption BLEU-1..n. Clipped n-gram counts; effective reference
    length = the closest reference length per caption (ties: the shorter)."""
    totals = {"correct": [0] * n, "guess": [0] * n, "testlen": 0, "reflen": 0}
    per_caption = {}
    for key, cand, refs in _prepare(references, candidates, tokenize):
        max_ref: Counter = Counter()
        for ref in refs:
            max_ref |= _ngrams(ref, n)  # element-wise max of counts
        counts = _ngrams(cand, n)
        correct = [0] * n
        for gram, c in counts.items():
            correct[len(gram) - 1] += min(c, max_ref[gram])
        guess = [max(0, len(cand) - k) for k in range(n)]
        reflen = min((abs(len(r) - len(cand)), len(r)) for r in refs)[1]
        per_caption[key] = _bleu_from_counts(correct, guess, len(cand), reflen)
        for k in range(n):
            totals["correct"][k] += correct[k]
            totals["guess"][k] += guess[k]
        totals["testlen"] += len(cand)
        totals["reflen"] += reflen
    corpus = _bleu_from_counts(totals["correct"], totals["guess"], totals["testlen"], totals["reflen"])
    return corpus, per_caption


def _tfidf(counts: Ngrams, n: int, df: Counter, log_num_docs: float) -> tuple[list[dict], list[float], int]:
    """Per-order tf-idf vectors, their norms, and the length CIDEr-D uses (its bigram count, as
    in the COCO code)."""
    vec: list[dict] = [{} for _ in range(n)]
    sq = [0.0] * n
    length = 0
    for gram, tf in counts.items():
        k = len(gram) - 1
        w = float(tf) * (log_num_docs - math.log(max(1.0, df[gram])))
        vec[k][gram] = w
        sq[k] += w * w
        if k == 1:
            length += tf
    return vec, [math.sqrt(s) for s in sq], length


def _cider_sim(hyp: tuple, ref: tuple, n: int, sigma: float) -> list[float]:
    """Clipped cosine similarity per n-gram order with the Gaussian length penalty."""
    (vh, nh, lh), (vr, nr, lr) = hyp, ref
    penalty = math.exp(-((lh - lr) ** 2) / (2 * sigma ** 2))
    out = []
    for k in range(n):
        val = sum(min(w, vr[k].get(g, 0.0)) * vr[k].get(g, 0.0) for g, w in vh[k].items())
        if nh[k] != 0 and nr[k] != 0:
            val /= nh[k] * nr[k]
        out.append(val * penalty)
    return out


def cider_d(
    references: Mapping[object, Sequence[str]],
    candidates: Mapping[object, object],
    n: int = 4,
    sigma: float = 6.0,
    tokenize: bool = True,
) -> tuple[float, dict[object, float]]:
    """Corpus CIDEr-D (mean over captions) and per-caption scores. Document frequencies come
    from the references of the scored set, as in pycocoevalcap."""
    items = _prepare(references, candidates, tokenize)
    ref_counts = [[_ngrams(r, n) for r in refs] for _, _, refs in items]
    df: Counter = Counter()
    for counts in ref_counts:
        df.update(set().union(*counts))
    log_num_docs = math.log(float(len(items)))
    per_caption = {}
    for (key, cand, _), counts in zip(items, ref_counts):
        hyp = _tfidf(_ngrams(cand, n), n, df, log_num_docs)
        total = [0.0] * n
        for rc in counts:
            sims = _cider_sim(hyp, _tfidf(rc, n, df, log_num_docs), n, sigma)
            total = [a + b for a, b in zip(total, sims)]
        per_caption[key] = sum(total) / n / len(counts) * 10.0
    return sum(per_caption.values()) / len(per_caption), per_caption


def caption_scores(
    references: Mapping[object, Sequence[str]], candidates: Mapping[object, object], tokenize: bool = True
) -> dict[str, float]:
    """{'BLEU-1'..'BLEU-4', 'CIDEr-D'} for a set of captions."""
    b, _ = bleu(references, candidates, 4, tokenize)
    scores = {f"BLEU-{k + 1}": v for k, v in enumerate(b)}
    scores["CIDEr-D"] = cider_d(references, candidates, tokenize=tokenize)[0]
    return scores
