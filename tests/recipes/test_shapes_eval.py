"""Held-out shapes evaluation: distinct-caption retrieval pairs."""
from lingvis.recipes.shapes_eval import distinct_pairs


def test_distinct_pairs_never_repeat_a_caption_and_count_skips():
    recs = [{"captions": ["a red circle", "a red circle on the left"]},
            {"captions": ["a red circle", "a red circle on the left"]},  # its first caption is taken: the second
            {"captions": ["a red circle", "a blue square"]},
            {"captions": ["a green star"]}]
    pairs, skipped = distinct_pairs(recs, n=10)
    texts = [t for _, t in pairs]
    assert texts == ["a red circle", "a red circle on the left", "a blue square", "a green star"]
    assert [r for r, _ in pairs] == recs and all(a is b for (a, _), b in zip(pairs, recs)) and skipped == 0
    pairs, skipped = distinct_pairs(recs + [{"captions": ["a green star"]}], n=10)
    assert len(pairs) == 4 and skipped == 1
    assert len(distinct_pairs(recs, n=2)[0]) == 2
