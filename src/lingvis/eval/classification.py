"""Classification metrics: accuracy, precision/recall/F1 (per class, macro, micro, weighted),
confusion matrix. Labels may be any hashable values; inputs may be lists, numpy arrays or tensors.
Conventions follow scikit-learn: classes = sorted union of true and predicted labels unless
`labels` is given; a 0/0 ratio counts as 0.0."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Hashable, Sequence

from lingvis.eval._common import f_beta, safe_div, to_list

AVERAGES = ("macro", "micro", "weighted", None)


@dataclass
class PRF:
    """Precision, recall, F1 (floats for an average, per-class lists for average=None) and support."""

    precision: Any
    recall: Any
    f1: Any
    support: Any


def _pair(y_true: Any, y_pred: Any) -> tuple[list, list]:
    t, p = to_list(y_true, "y_true"), to_list(y_pred, "y_pred")
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} items but y_pred has {len(p)}")
    if not t:
        raise ValueError("y_true and y_pred are empty")
    return t, p


def _labels(t: list, p: list, labels: Sequence[Hashable] | None) -> list:
    if labels is not None:
        labels = list(labels)
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels contains duplicates: {labels}")
        return labels
    try:
        return sorted(set(t) | set(p))
    except TypeError as err:
        raise TypeError(f"labels of mixed, unorderable types; pass `labels` explicitly ({err})") from None


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of positions where prediction equals truth."""
    t, p = _pair(y_true, y_pred)
    return sum(a == b for a, b in zip(t, p)) / len(t)


def confusion_matrix(y_true: Any, y_pred: Any, labels: Sequence[Hashable] | None = None) -> list[list[int]]:
    """Counts `m[i][j]` of items with true class labels[i] predicted as labels[j].
    Items whose true or predicted label is not in `labels` are ignored (as in scikit-learn)."""
    t, p = _pair(y_true, y_pred)
    labels = _labels(t, p, labels)
    index = {lab: i for i, lab in enumerate(labels)}
    m = [[0] * len(labels) for _ in labels]
    for a, b in zip(t, p):
        if a in index and b in index:
            m[index[a]][index[b]] += 1
    return m


def precision_recall_f1(
    y_true: Any,
    y_pred: Any,
    average: str | None = "macro",
    labels: Sequence[Hashable] | None = None,
    beta: float = 1.0,
) -> PRF:
    """Precision, recall and F-beta. `average`: 'macro' (unweighted class mean), 'micro'
    (global counts), 'weighted' (class mean weighted by support) or None (per-class lists
    in `labels` order). Support is the number of true items per class (summed when averaged)."""
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    t, p = _pair(y_true, y_pred)
    labels = _labels(t, p, labels)
    hits, pc, tc = Counter(a for a, b in zip(t, p) if a == b), Counter(p), Counter(t)
    tp = [hits[lab] for lab in labels]
    pred_count = [pc[lab] for lab in labels]
    true_count = [tc[lab] for lab in labels]
    if average == "micro":
        prec = safe_div(sum(tp), sum(pred_count))
        rec = safe_div(sum(tp), sum(true_count))
        return PRF(prec, rec, f_beta(prec, rec, beta), sum(true_count))
    precs = [safe_div(a, b) for a, b in zip(tp, pred_count)]
    recs = [safe_div(a, b) for a, b in zip(tp, true_count)]
    f1s = [f_beta(a, b, beta) for a, b in zip(precs, recs)]
    if average is None:
        return PRF(precs, recs, f1s, true_count)
    if average == "macro":
        weights = [1.0] * len(labels)
    else:
        weights = [float(c) for c in true_count]
    total = sum(weights)

    def mean(xs: list[float]) -> float:
        return safe_div(sum(w * x for w, x in zip(weights, xs)), total)

    return PRF(mean(precs), mean(recs), mean(f1s), sum(true_count))


def classification_report(
    y_true: Any, y_pred: Any, labels: Sequence[Hashable] | None = None
) -> dict[str, Any]:
    """Accuracy plus per-class, macro, micro and weighted P/R/F1 in one dict."""
    t, p = _pair(y_true, y_pred)
    labels = _labels(t, p, labels)
    per = precision_recall_f1(t, p, None, labels)
    report: dict[str, Any] = {"accuracy": accuracy(t, p), "per_class": {}}
    for i, lab in enumerate(labels):
        report["per_class"][lab] = PRF(per.precision[i], per.recall[i], per.f1[i], per.support[i])
    for avg in ("macro", "micro", "weighted"):
        report[avg] = precision_recall_f1(t, p, avg, labels)
    return report
