import random

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from lingvis.eval.classification import (
    accuracy,
    classification_report,
    confusion_matrix,
    precision_recall_f1,
)


def _random_case(seed: int, n: int = 60, k: int = 5):
    rng = random.Random(seed)
    y_true = [rng.randrange(k) for _ in range(n)]
    y_pred = [y if rng.random() < 0.5 else rng.randrange(k + 1) for y in y_true]  # class k only predicted
    return y_true, y_pred


def test_hand_computed_case():
    y_true = ["cat", "cat", "dog", "dog", "bird"]
    y_pred = ["cat", "dog", "dog", "dog", "cat"]
    assert accuracy(y_true, y_pred) == pytest.approx(3 / 5)
    assert confusion_matrix(y_true, y_pred) == [[0, 1, 0], [0, 1, 1], [0, 0, 2]]  # bird, cat, dog
    per = precision_recall_f1(y_true, y_pred, average=None)
    assert per.precision == pytest.approx([0.0, 0.5, 2 / 3])
    assert per.recall == pytest.approx([0.0, 0.5, 1.0])
    assert per.f1 == pytest.approx([0.0, 0.5, 0.8])
    assert per.support == [1, 2, 2]
    macro = precision_recall_f1(y_true, y_pred, "macro")
    assert macro.f1 == pytest.approx((0 + 0.5 + 0.8) / 3)
    micro = precision_recall_f1(y_true, y_pred, "micro")
    assert micro.precision == micro.recall == micro.f1 == pytest.approx(3 / 5)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_matches_sklearn(seed, average):
    y_true, y_pred = _random_case(seed)
    ours = precision_recall_f1(y_true, y_pred, average)
    p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
    assert (ours.precision, ours.recall, ours.f1) == pytest.approx((p, r, f), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_matches_sklearn_with_label_subset_and_confusion(seed):
    y_true, y_pred = _random_case(seed)
    labels = [0, 2, 3]
    for average in ("macro", "micro", None):
        ours = precision_recall_f1(y_true, y_pred, average, labels=labels)
        ref = skm.precision_recall_fscore_support(y_true, y_pred, average=average, labels=labels, zero_division=0)
        np.testing.assert_allclose(np.array(ours.precision, dtype=float), ref[0], atol=1e-12)
        np.testing.assert_allclose(np.array(ours.f1, dtype=float), ref[2], atol=1e-12)
    assert np.array_equal(np.array(confusion_matrix(y_true, y_pred)), skm.confusion_matrix(y_true, y_pred))
    assert np.array_equal(
        np.array(confusion_matrix(y_true, y_pred, labels)), skm.confusion_matrix(y_true, y_pred, labels=labels)
    )


def test_accepts_tensors_and_arrays():
    y_true, y_pred = _random_case(11)
    expected = skm.accuracy_score(y_true, y_pred)
    assert accuracy(torch.tensor(y_true), torch.tensor(y_pred)) == pytest.approx(expected)
    assert accuracy(np.array(y_true), np.array(y_pred)) == pytest.approx(expected)


def test_report_and_errors():
    y_true, y_pred = _random_case(3)
    rep = classification_report(y_true, y_pred)
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert rep["per_class"][0].support == y_true.count(0)
    assert rep["macro"].f1 == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    with pytest.raises(ValueError, match="y_true has 2 items but y_pred has 1"):
        accuracy([1, 2], [1])
    with pytest.raises(ValueError, match="average must be one of"):
        precision_recall_f1([1], [1], average="samples")
    with pytest.raises(ValueError, match="1-D"):
        accuracy([[1, 2]], [[1, 2]])


def test_mixed_label_types_need_explicit_labels():
    with pytest.raises(TypeError, match="pass `labels` explicitly"):
        precision_recall_f1([1, "a"], ["a", 1])
    assert precision_recall_f1([1, "a"], ["a", 1], "micro", labels=[1, "a"]).f1 == 0.0
