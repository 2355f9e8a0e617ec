import random
from types import SimpleNamespace

import pytest

from lingvis.eval.seqeval import entity_scores, get_entities


@pytest.fixture(scope="module")
def ref():
    """The PyPI `seqeval` package (test-only reference)."""
    pytest.importorskip("seqeval")
    from seqeval import metrics, scheme
    from seqeval.metrics.sequence_labeling import get_entities as ref_get_entities

    return SimpleNamespace(
        get_entities=ref_get_entities, IOB2=scheme.IOB2, precision_score=metrics.precision_score,
        recall_score=metrics.recall_score, f1_score=metrics.f1_score,
        classification_report=metrics.classification_report,
    )


def test_get_entities_hand_cases():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "I-ORG", "O", "I-MISC", "I-MISC"]
    assert get_entities(tags) == [("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 5), ("ORG", 6, 6), ("MISC", 8, 9)]
    # strict IOB2: stray I- tags (ORG at 6, MISC at 8-9) form no entity
    assert get_entities(tags, mode="strict") == [("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 5)]
    # IOB1: entities start with I-, B- separates adjacent entities of one type
    assert get_entities(["I-PER", "I-PER", "B-PER", "O"]) == [("PER", 0, 1), ("PER", 2, 2)]
    # BIOES in lenient mode
    assert get_entities(["S-PER", "B-LOC", "I-LOC", "E-LOC", "O"]) == [("PER", 0, 0), ("LOC", 1, 3)]


def test_hand_computed_scores():
    y_true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
    y_pred = [["B-PER", "I-PER", "O", "O"], ["B-ORG", "I-ORG", "B-PER"]]
    # gold: PER(0,0-1) LOC(0,3) ORG(1,0) PER(1,2); pred: PER(0,0-1) ORG(1,0-1) PER(1,2)
    s = entity_scores(y_true, y_pred)
    assert s.precision == pytest.approx(2 / 3)
    assert s.recall == pytest.approx(2 / 4)
    assert s.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert s.support == 4
    assert s.per_type["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert s.per_type["ORG"]["f1"] == 0.0 and s.per_type["LOC"]["recall"] == 0.0
    assert s.macro["f1"] == pytest.approx(1 / 3)


def _random_tags(rng, n, prefixes):
    out = []
    for _ in range(n):
        p = rng.choice(prefixes + ["O", "O"])
        out.append("O" if p == "O" else f"{p}-{rng.choice(['PER', 'LOC', 'ORG'])}")
    return out


def _random_corpus(seed, prefixes):
    rng = random.Random(seed)
    gold = [_random_tags(rng, rng.randint(1, 15), prefixes) for _ in range(30)]
    pred = [[g if rng.random() < 0.7 else _random_tags(rng, 1, prefixes)[0] for g in seq] for seq in gold]
    return gold, pred


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("prefixes", [["B", "I"], ["B", "I", "E", "S"]])
def test_lenient_matches_seqeval(seed, prefixes, ref):
    gold, pred = _random_corpus(seed, prefixes)
    for seq in gold:
        assert get_entities(seq) == ref.get_entities(seq)
    s = entity_scores(gold, pred)
    assert s.precision == pytest.approx(ref.precision_score(gold, pred))
    assert s.recall == pytest.approx(ref.recall_score(gold, pred))
    assert s.f1 == pytest.approx(ref.f1_score(gold, pred))
    report = ref.classification_report(gold, pred, output_dict=True)
    for etype, row in s.per_type.items():
        assert row["f1"] == pytest.approx(report[etype]["f1-score"])
        assert row["support"] == report[etype]["support"]
    assert s.macro["f1"] == pytest.approx(report["macro avg"]["f1-score"])


@pytest.mark.parametrize("seed", range(6))
def test_strict_iob2_matches_seqeval(seed, ref):
    gold, pred = _random_corpus(seed, ["B", "I"])
    s = entity_scores(gold, pred, mode="strict", scheme="IOB2")
    kw = {"mode": "strict", "scheme": ref.IOB2}
    assert s.precision == pytest.approx(ref.precision_score(gold, pred, **kw))
    assert s.recall == pytest.approx(ref.recall_score(gold, pred, **kw))
    assert s.f1 == pytest.approx(ref.f1_score(gold, pred, **kw))


def test_errors():
    with pytest.raises(ValueError, match=r"y_pred\[0\] token 1: bad tag 'X-PER'"):
        entity_scores([["O", "O"]], [["O", "X-PER"]])
    with pytest.raises(ValueError, match="sequence 0: y_true has 2 tags but y_pred has 1"):
        entity_scores([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="bad tag 'E-PER'"):
        entity_scores([["E-PER"]], [["O"]], mode="strict")
    with pytest.raises(ValueError, match="mode must be one of"):
        get_entities(["O"], mode="loose")
