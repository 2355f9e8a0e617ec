"""Speculative proposals: prompt lookup's bytes search equals a brute-force search over every earlier n-gram, a
repeating cycle is proposed k tokens around (only once it has come round twice), and the draft length adapts to
what the previous round kept."""
import random

from lingvis.generate import SamplingConfig
from lingvis.speculative import PromptLookup, next_draft_tokens


def brute_force(seq: list[int], k: int, max_ngram: int = 3, min_ngram: int = 1) -> list[int]:
    L = len(seq)
    if k <= 0 or L < 2:
        return []
    for n in range(min(max_ngram, L - 1), min_ngram - 1, -1):
        starts = [j for j in range(L - n) if seq[j:j + n] == seq[L - n:]]  # j + n <= L - 1: a token follows
        if not starts:
            continue
        j = starts[-1]
        out, period = seq[j + n:j + n + k], L - n - j
        if len(out) < k and L >= 2 * period and seq[L - 2 * period:L - period] == seq[L - period:]:
            out = [out[i % period] for i in range(k)]
        return out
    return []


def test_prompt_lookup_equals_brute_force():
    rng = random.Random(0)
    cfg = SamplingConfig()
    for mx, mn in ((3, 1), (2, 2), (5, 1)):
        pl = PromptLookup(max_ngram=mx, min_ngram=mn)
        for _ in range(1500):
            vocab = rng.choice([2, 3, 7, 300, 70_000, 2 ** 31 + 5])  # ids of 4 and 8 bytes; byte patterns that
            seq = [rng.randrange(vocab) for _ in range(rng.randrange(1, 40))]  # straddle ids must not match
            k = rng.randrange(0, 12)
            assert pl.propose(seq, k, cfg, None).tokens == brute_force(seq, k, mx, mn), (seq, k, mx, mn)


def test_a_cycle_is_proposed_round_and_round():
    pl, cfg = PromptLookup(), SamplingConfig()
    loop = list(b"I say the the the")
    assert bytes(pl.propose(loop, 10, cfg, None).tokens) == b" the the t"  # not just " the" (4 tokens)
    assert pl.propose([4, 9, 4], 5, cfg, None).tokens == [9, 4]  # one period seen: no evidence of a cycle yet
    assert pl.propose([4, 9, 4, 9, 4], 5, cfg, None).tokens == [9, 4, 9, 4, 9]
    assert pl.propose([1, 2, 3, 1, 2, 3, 9], 4, cfg, None).tokens == []  # 9 never seen before


def test_draft_length_adapts():
    assert next_draft_tokens(8, 8, 8, 8) == 8  # all kept: stay at the maximum
    assert next_draft_tokens(8, 8, 8, 0) == 1  # a miss at once: propose one next time
    assert next_draft_tokens(8, 8, 8, 3) == 4  # kept 3: one more than that
    assert next_draft_tokens(1, 8, 1, 1) == 2 and next_draft_tokens(2, 8, 2, 2) == 4  # hits double back up
    assert next_draft_tokens(4, 8, 4, 4) == 8 and next_draft_tokens(6, 8, 6, 6) == 8  # capped at k
    assert next_draft_tokens(5, 8, 0, 0) == 5  # nothing proposed (no match): unchanged
