"""Machine-translation metrics: corpus BLEU and chrF via sacrebleu, with BLEU's tokenizer chosen
automatically for Chinese targets ('zh'), from `target_lang` or by detecting CJK characters in
the references. Scores are sacrebleu's 0-100 values; the signature string records the settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from .._optional import require

# Code points of Chinese characters (CJK Unified Ideographs + Extension A + Compatibility).
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0xF900, 0xFAFF))
# References count as Chinese when at least this share of their non-space characters is CJK.
CJK_SHARE_THRESHOLD = 0.1
_CHINESE_CODES = ("zh", "cmn", "yue", "chinese")


@dataclass
class TranslationScore:
    """A corpus score, sacrebleu's signature, and BLEU's details (empty for chrF)."""

    name: str
    score: float
    signature: str
    details: dict[str, float | list[float]] = field(default_factory=dict)


def is_cjk(ch: str) -> bool:
    """True for a Chinese (Han) character."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def cjk_share(texts: Sequence[str]) -> float:
    """Share of CJK characters among the non-whitespace characters of `texts`."""
    chars = [ch for t in texts for ch in t if not ch.isspace()]
    return sum(map(is_cjk, chars)) / len(chars) if chars else 0.0


def _ref_streams(hypotheses: Sequence[str], references: Sequence) -> list[list[str | None]]:
    """Per-segment references (a str, or a list of str per segment) -> sacrebleu ref streams."""
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError("hypotheses and references must be lists, not a single string")
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("no segments to score")
    per_seg = [[r] if isinstance(r, str) else list(r) for r in references]
    for i, refs in enumerate(per_seg):
        if not refs or not all(isinstance(r, str) for r in refs):
            raise ValueError(f"references[{i}]: expected a string or a non-empty list of strings")
    width = max(len(r) for r in per_seg)
    return [[refs[j] if j < len(refs) else None for refs in per_seg] for j in range(width)]


def choose_tokenizer(references: Sequence, target_lang: str | None = None) -> str:
    """'zh' for a Chinese target (by language code, else by CJK share of references), else '13a'."""
    if target_lang:
        code = target_lang.lower().replace("_", "-").split("-")[0]
        return "zh" if code in _CHINESE_CODES else "13a"
    flat = [r for seg in references for r in ([seg] if isinstance(seg, str) else seg)]
    return "zh" if cjk_share(flat) >= CJK_SHARE_THRESHOLD else "13a"


def corpus_bleu(
    hypotheses: Sequence[str],
    references: Sequence,
    target_lang: str | None = None,
    tokenize: str | None = None,
    lowercase: bool = False,
) -> TranslationScore:
    """sacrebleu corpus BLEU. `references[i]` is the reference (or list of references) of
    segment i. `tokenize` overrides the automatic choice."""
    streams = _ref_streams(hypotheses, references)
    tok = tokenize or choose_tokenizer(references, target_lang)
    metric = require("sacrebleu.metrics", "BLEU").BLEU(tokenize=tok, lowercase=lowercase)
    s = metric.corpus_score(list(hypotheses), streams)
    details = {"precisions": list(s.precisions), "bp": s.bp, "ratio": s.sys_len / s.ref_len if s.ref_len else 0.0,
               "sys_len": s.sys_len, "ref_len": s.ref_len}
    return TranslationScore("BLEU", float(s.score), str(metric.get_signature()), details)


def corpus_chrf(
    hypotheses: Sequence[str], references: Sequence, word_order: int = 0, lowercase: bool = False
) -> TranslationScore:
    """sacrebleu corpus chrF (word_order=2 gives chrF++). Character-level, so no tokenizer."""
    streams = _ref_streams(hypotheses, references)
    metric = require("sacrebleu.metrics", "chrF").CHRF(word_order=word_order, lowercase=lowercase)
    s = metric.corpus_score(list(hypotheses), streams)
    return TranslationScore(s.name, float(s.score), str(metric.get_signature()))
