"""Official VQA accuracy (VQAEval of the VQA v2 evaluation tools).

For each question: the prediction is normalised (see vqa_normalize); the gold answers are passed
through process_punctuation when they disagree; accuracy = mean over the 10 leave-one-out subsets
of min(1, #matching answers in the subset / 3). Results are percentages (0-100), unrounded (the
official script rounds to 2 decimals when printing)."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from lingvis.eval.vqa_normalize import normalize_vqa_answer, process_punctuation


@dataclass
class VQAResult:
    """Overall, per-question-type, per-answer-type and per-question accuracies (percent)."""

    overall: float
    per_question_type: dict[str, float] = field(default_factory=dict)
    per_answer_type: dict[str, float] = field(default_factory=dict)
    per_question: dict[Any, float] = field(default_factory=dict)


def vqa_question_accuracy(prediction: str, gold_answers: Sequence[str]) -> float:
    """Accuracy in [0, 1] of one predicted answer against its (usually 10) human answers."""
    if not gold_answers:
        raise ValueError("gold_answers is empty")
    pred = normalize_vqa_answer(prediction)
    golds = list(gold_answers)
    if len(set(golds)) > 1:
        golds = [process_punctuation(g) for g in golds]
    matches = [g == pred for g in golds]
    total = sum(matches)
    # leaving answer i out leaves total - matches[i] matching answers among the others
    return sum(min(1.0, (total - m) / 3.0) for m in matches) / len(golds)


def _annotation_list(annotations: Any) -> list[Mapping[str, Any]]:
    if isinstance(annotations, Mapping):
        if "annotations" not in annotations:
            raise ValueError("annotations: a dict must hold an 'annotations' list (VQAv2 JSON)")
        annotations = annotations["annotations"]
    return list(annotations)


def _prediction_map(predictions: Any) -> dict[Any, str]:
    if isinstance(predictions, Mapping):
        return dict(predictions)
    out = {}
    for i, item in enumerate(predictions):  # official results list [{question_id, answer}]
        if "question_id" not in item or "answer" not in item:
            raise ValueError(f"predictions[{i}] lacks 'question_id' or 'answer'")
        out[item["question_id"]] = item["answer"]
    return out


def _check_annotation(i: int, ann: Mapping[str, Any]) -> None:
    for key in ("question_id", "answers", "question_type", "answer_type"):
        if key not in ann:
            raise ValueError(f"annotations[{i}] lacks field '{key}'")
    for j, a in enumerate(ann["answers"]):
        if "answer" not in a:
            raise ValueError(f"annotations[{i}].answers[{j}] lacks field 'answer'")


def _mean_pct(values: list[float]) -> float:
    return 100.0 * sum(values) / len(values)


def vqa_evaluate(predictions: Any, annotations: Any, question_ids: Sequence[Any] | None = None) -> VQAResult:
    """Score {question_id: answer} (or the official results list) against VQAv2 annotations
    (the list, or the JSON dict holding it). By default every annotated question must have a
    prediction; pass `question_ids` to score a subset."""
    preds = _prediction_map(predictions)
    anns = _annotation_list(annotations)
    by_id = {}
    for i, ann in enumerate(anns):
        _check_annotation(i, ann)
        by_id[ann["question_id"]] = ann
    ids = list(by_id) if question_ids is None else list(question_ids)
    if not ids:
        raise ValueError("no questions to evaluate")
    unknown = [q for q in ids if q not in by_id]
    if unknown:
        raise ValueError(f"{len(unknown)} question ids have no annotation, e.g. {unknown[:3]}")
    missing = [q for q in ids if q not in preds]
    if missing:
        raise ValueError(f"{len(missing)} questions have no prediction, e.g. {missing[:3]}")
    per_question: dict[Any, float] = {}
    by_qtype: dict[str, list[float]] = defaultdict(list)
    by_atype: dict[str, list[float]] = defaultdict(list)
    for q in ids:
        ann = by_id[q]
        acc = vqa_question_accuracy(str(preds[q]), [a["answer"] for a in ann["answers"]])
        per_question[q] = 100.0 * acc
        by_qtype[ann["question_type"]].append(acc)
        by_atype[ann["answer_type"]].append(acc)
    return VQAResult(
        overall=sum(per_question.values()) / len(ids),
        per_question_type={k: _mean_pct(v) for k, v in by_qtype.items()},
        per_answer_type={k: _mean_pct(v) for k, v in by_atype.items()},
        per_question=per_question,
    )
