import random

import pytest

from lingvis.eval.vqa import vqa_evaluate, vqa_question_accuracy
from lingvis.eval.vqa_normalize import (
    CONTRACTIONS,
    normalize_vqa_answer,
    process_digit_article,
    process_punctuation,
)


def _ann(qid, answers, qtype="what color", atype="other"):
    return {
        "question_id": qid, "image_id": 1, "question_type": qtype, "answer_type": atype,
        "multiple_choice_answer": answers[0],
        "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)],
    }


@pytest.mark.parametrize("text,expected", [
    ("Two", "2"),
    ("the dog.", "dog"),
    ("Yes!", "yes"),
    ("dont", "don't"),
    ("2.5", "2.5"),          # a period followed by a digit stays
    ("1,000", "1000"),       # digit,digit comma: punctuation removed, not spaced
    ("red,blue", "red blue"),
    ("red, blue", "red blue"),
    ("black-and-white", "black and white"),
    ("t - shirt", "t shirt"),
    ("An\tapple\n", "apple"),
    ("Im", "im"),           # the official table's capitalised keys never match lower-cased text
    ("ten o'clock", "10 o'clock"),
])
def test_normalisation(text, expected):
    assert normalize_vqa_answer(text) == expected


def test_processing_steps_and_contraction_table():
    assert process_punctuation("what?is") == "what is"
    assert process_punctuation("what? is") == "what is"  # spaced mark: removed, not spaced
    assert process_digit_article("A Three Cats") == "3 cats"
    assert CONTRACTIONS["couldnt've"] == CONTRACTIONS["couldn'tve"] == "couldn't've"
    assert CONTRACTIONS["somebody'd"] == "somebodyd" and "shes" not in CONTRACTIONS
    assert len(CONTRACTIONS) == 120


@pytest.mark.parametrize("n_match,expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_leave_one_out_values(n_match, expected):
    golds = ["cat"] * n_match + ["dog"] * (10 - n_match)
    assert vqa_question_accuracy("cat", golds) == pytest.approx(expected)


def _literal_accuracy(pred, golds):
    """Leave-one-out written out literally: 10 subsets of 9 answers."""
    pred = normalize_vqa_answer(pred)
    if len(set(golds)) > 1:
        golds = [process_punctuation(g) for g in golds]
    accs = []
    for i in range(len(golds)):
        others = golds[:i] + golds[i + 1:]
        accs.append(min(1.0, sum(g == pred for g in others) / 3))
    return sum(accs) / len(accs)


def test_shortcut_matches_literal_leave_one_out():
    rng = random.Random(0)
    vocab = ["yes", "no", "2", "red", "red, blue", "dog"]
    for _ in range(200):
        golds = [rng.choice(vocab) for _ in range(10)]
        pred = rng.choice(vocab + ["Two", "Yes."])
        assert vqa_question_accuracy(pred, golds) == pytest.approx(_literal_accuracy(pred, golds))


def test_gold_answers_only_punctuation_processed():
    # official behaviour: unanimous gold answers are compared raw, so "Two" never equals "2"
    assert vqa_question_accuracy("two", ["Two"] * 10) == 0.0
    assert vqa_question_accuracy("2", ["2"] * 10) == 1.0
    assert vqa_question_accuracy("red blue", ["red,blue"] * 5 + ["red"] * 5) == 1.0  # mixed: punctuation applied


def test_evaluate_breakdowns():
    anns = [
        _ann(1, ["yes"] * 10, "is this", "yes/no"),
        _ann(2, ["2"] * 2 + ["3"] * 8, "how many", "number"),
        _ann(3, ["red"] * 3 + ["blue"] * 7, "what color", "other"),
        _ann(4, ["no"] * 10, "is this", "yes/no"),
    ]
    preds = {1: "Yes", 2: "two", 3: "red", 4: "yes"}
    res = vqa_evaluate(preds, {"annotations": anns})
    assert res.per_question == pytest.approx({1: 100.0, 2: 60.0, 3: 90.0, 4: 0.0})
    assert res.overall == pytest.approx((100 + 60 + 90 + 0) / 4)
    assert res.per_question_type == pytest.approx({"is this": 50.0, "how many": 60.0, "what color": 90.0})
    assert res.per_answer_type == pytest.approx({"yes/no": 50.0, "number": 60.0, "other": 90.0})
    listed = vqa_evaluate([{"question_id": q, "answer": a} for q, a in preds.items()], anns)
    assert listed.overall == pytest.approx(res.overall)
    assert vqa_evaluate({2: "3"}, anns, question_ids=[2]).overall == pytest.approx(100.0)


def test_evaluate_errors():
    anns = [_ann(1, ["yes"] * 10)]
    with pytest.raises(ValueError, match="1 questions have no prediction"):
        vqa_evaluate({}, anns)
    with pytest.raises(ValueError, match="have no annotation"):
        vqa_evaluate({1: "yes"}, anns, question_ids=[7])
    bad = [{"question_id": 1, "answers": [], "question_type": "x"}]
    with pytest.raises(ValueError, match=r"annotations\[0\] lacks field 'answer_type'"):
        vqa_evaluate({1: "yes"}, bad)
    with pytest.raises(ValueError, match="'annotations' list"):
        vqa_evaluate({1: "yes"}, {"questions": []})
