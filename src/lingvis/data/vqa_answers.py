"""Answer vocabulary with VQAv2 soft targets, and the coverage report of answers it cannot represent."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

from ..eval.vqa import vqa_question_accuracy
from ..eval.vqa_normalize import normalize_vqa_answer


@dataclass
class Coverage:
    """How many questions have no gold answer in the vocabulary (their target is all zeros)."""

    questions: int
    out_of_vocab: int
    oov_answers: Counter = field(default_factory=Counter)

    @property
    def fraction(self) -> float:
        return self.out_of_vocab / max(1, self.questions)

    def message(self, name: str = "training") -> str:
        if not self.out_of_vocab:
            return f"all {self.questions} {name} questions have an answer in the vocabulary"
        top = ", ".join(f"{a!r} x{n}" for a, n in self.oov_answers.most_common(5))
        return (f"{self.out_of_vocab} of {self.questions} {name} questions ({100 * self.fraction:.1f}%) have no "
                f"answer in the vocabulary (they train toward all-zero targets and cannot be answered "
                f"correctly); most frequent missing answers: {top}")


class AnswerVocab:
    """Normalised answers (official VQA normalisation) <-> ids."""

    def __init__(self, answers: list[str]):
        if not answers:
            raise ValueError("the answer vocabulary is empty")
        self.answers = list(answers)
        self.index = {a: i for i, a in enumerate(self.answers)}
        if len(self.index) != len(self.answers):
            raise ValueError("the answer vocabulary has duplicate entries")

    def __len__(self) -> int:
        return len(self.answers)

    @classmethod
    def build(cls, answer_lists: list[list[str]], min_count: int = 1, max_size: int | None = None) -> "AnswerVocab":
        """Most frequent answers, counting each question's majority answer once (VQAv2 practice);
        ties break alphabetically so the vocabulary is deterministic."""
        counts: Counter = Counter()
        for answers in answer_lists:
            if answers:
                norm = Counter(normalize_vqa_answer(a) for a in answers)
                counts[max(norm.items(), key=lambda kv: (kv[1], kv[0]))[0]] += 1
        ranked = sorted((a for a, n in counts.items() if n >= min_count and a), key=lambda a: (-counts[a], a))
        if not ranked:
            raise ValueError(f"no answer occurs at least {min_count} time(s): cannot build a vocabulary")
        return cls(ranked[:max_size] if max_size else ranked)

    def soft_target(self, answers: list[str]) -> torch.Tensor:
        """(A,) target: for each vocabulary answer its official VQA accuracy against `answers`
        (min(1, matches/3) over the leave-one-out subsets: 1 match -> 0.3, 2 -> 0.6, 3 -> 0.9, 4+ -> 1)."""
        target = torch.zeros(len(self))
        for cand in {normalize_vqa_answer(a) for a in answers}:
            i = self.index.get(cand)
            if i is not None:
                target[i] = vqa_question_accuracy(cand, answers)
        return target

    def coverage(self, answer_lists: list[list[str]]) -> Coverage:
        cov = Coverage(len(answer_lists), 0)
        for answers in answer_lists:
            norm = [normalize_vqa_answer(a) for a in answers]
            if not any(a in self.index for a in norm):
                cov.out_of_vocab += 1
                if norm:
                    cov.oov_answers[Counter(norm).most_common(1)[0][0]] += 1
        return cov
