import pytest

from lingvis.eval.squad import (
    exact_match,
    gold_answers,
    normalize_answer,
    squad_evaluate,
    token_f1,
)


def _dataset(qas):
    """Official SQuAD JSON layout around (id, [answer texts]) pairs."""
    return {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": "c", "qas": [
        {"id": qid, "question": "?", "answers": [{"text": t, "answer_start": 0} for t in answers]}
        for qid, answers in qas
    ]}]}]}


def test_normalize_answer():
    assert normalize_answer("The  Quick, brown fox!") == "quick brown fox"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("theatre") == "theatre"  # articles only as whole words
    assert normalize_answer("  A.  ") == ""


def test_exact_and_f1_known_values():
    assert exact_match("an Apple.", "apple") == 1.0
    assert exact_match("apples", "apple") == 0.0
    # pred tokens cat sat on mat vs gold cat on mat: P = 3/4, R = 1
    assert token_f1("the cat sat on the mat", "cat on mat") == pytest.approx(2 * 0.75 / 1.75)
    assert token_f1("x y y y", "y y z") == pytest.approx(4 / 7)  # 2 common (clipped): P 2/4, R 2/3
    assert token_f1("x", "y") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "the") == 1.0 and token_f1("x", "") == 0.0


def test_v11_max_over_golds_and_missing_prediction():
    data = _dataset([("q1", ["Denver Broncos", "the Broncos"]), ("q2", ["1990"]), ("q3", ["red"])])
    res = squad_evaluate(data, {"q1": "Broncos", "q2": "in 1990"}, version="v1.1")
    # q1: EM 1 vs "the Broncos"; q2: EM 0, F1 = 2*(1/2*1)/(1.5) = 2/3; q3 missing -> 0
    assert res.exact == pytest.approx(100 * 1 / 3)
    assert res.f1 == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)
    assert res.total == 3 and res.missing == 1
    with pytest.raises(ValueError, match="v1.1 question without gold answers"):
        squad_evaluate({"q": []}, {"q": ""}, version="v1.1")


def test_v2_no_answer_handling_and_breakdown():
    refs = {"a1": ["Paris", "paris, France"], "a2": ["blue whale"], "n1": [], "n2": [], "e1": ["the"]}
    preds = {"a1": "paris", "a2": "whale", "n1": "", "n2": "something", "e1": ""}
    res = squad_evaluate(refs, preds, version="v2.0")
    # a1 1/1, a2 EM 0 F1 2/3, n1 1/1, n2 0/0, e1: gold "the" normalises to "" -> counts as no-answer gold
    assert res.exact == pytest.approx(100 * 3 / 5)
    assert res.f1 == pytest.approx(100 * (1 + 2 / 3 + 1 + 0 + 1) / 5)
    assert (res.has_ans_total, res.no_ans_total) == (3, 2)  # e1 has an answer entry, so it is HasAns
    assert res.has_ans_exact == pytest.approx(100 * 2 / 3)
    assert res.has_ans_f1 == pytest.approx(100 * (1 + 2 / 3 + 1) / 3)
    assert res.no_ans_exact == pytest.approx(50.0) and res.no_ans_f1 == pytest.approx(50.0)


def test_v2_na_probs_threshold_and_best_threshold():
    data = _dataset([("q1", ["yes"]), ("q2", []), ("q3", [])])
    preds = {"q1": "yes", "q2": "x", "q3": ""}
    na = {"q1": 0.1, "q2": 0.9, "q3": 0.5}
    assert squad_evaluate(data, preds, na_probs=na).exact == pytest.approx(200 / 3)  # thresh 1.0: nothing flips
    res = squad_evaluate(data, preds, na_probs=na, na_prob_thresh=0.5)
    assert res.exact == pytest.approx(100.0)  # q2 (0.9 > 0.5) becomes a correct no-answer
    assert res.best_exact == pytest.approx(100.0) and res.best_exact_thresh == pytest.approx(0.1)
    assert res.best_f1 == pytest.approx(100.0)
    with pytest.raises(ValueError, match="na_probs lacks 1 question ids"):
        squad_evaluate(data, preds, na_probs={"q1": 0.0, "q2": 0.0})


def test_gold_answers_from_data_list_and_errors():
    data = _dataset([("q1", ["a b"])])
    assert gold_answers(data["data"]) == {"q1": ["a b"]}
    with pytest.raises(ValueError, match=r"data\[0\].paragraphs\[0\].qas\[0\] lacks 'id'"):
        gold_answers([{"paragraphs": [{"qas": [{"answers": []}]}]}])
    with pytest.raises(ValueError, match="version must be one of"):
        squad_evaluate(data, {}, version="v3")
