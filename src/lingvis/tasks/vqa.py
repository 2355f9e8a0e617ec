"""VQA as answer classification: BCE against VQAv2 soft targets from the fusion model's pooled output;
evaluation with the official VQA accuracy and its per-question-type breakdown."""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..data.vqa import VQAExample, annotations_of
from ..data.vqa_dataset import FusionImageTransform, VQADataset, pad_images
from ..eval.vqa import VQAResult, vqa_evaluate
from ..progress import progress
from ..train.task import Task, move_to


def encode_texts(tokenizer, texts: list[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] text [SEP], truncated to `max_len` and right-padded -> input_ids, attention_mask (B, T)."""
    missing = [r for r in ("cls", "sep", "pad") if getattr(tokenizer, f"{r}_id") is None]
    if missing:
        raise ValueError(f"the tokenizer has no {', '.join(missing)} token(s); fusion models need BERT-style "
                         "[CLS]/[SEP]/[PAD] (train a WordPiece tokenizer or load the model's own)")
    body = tokenizer.encode_batch(list(texts))
    seqs = [[tokenizer.cls_id, *ids[:max_len - 2], tokenizer.sep_id] for ids in body]
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return ids, mask  # (B, T) each


def model_inputs(batch: dict) -> dict:
    return {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values", "pixel_mask")}


class VQATask(Task):
    """Items from `VQADataset`. The loss follows the model's `vqa_loss`: ViLT's BCE-with-logits scaled by the
    number of answers (`bce`), or cross-entropy against the soft scores normalised to a distribution
    (`softmax`: rare answers are not drowned by every other question's negatives)."""

    name = "vqa"
    metric_for_best = "vqa_accuracy"
    greater_is_better = True

    def __init__(self, tokenizer, max_text_len: int):
        self.tokenizer, self.max_text_len = tokenizer, max_text_len

    def collate(self, samples: list[dict]) -> dict:
        ids, mask = encode_texts(self.tokenizer, [s["question"] for s in samples], self.max_text_len)
        pixels, pixel_mask = pad_images([s["pixel_values"] for s in samples])
        batch = {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels, "pixel_mask": pixel_mask,
                 "question_id": [s["question_id"] for s in samples], "answers": [s["answers"] for s in samples],
                 "question_type": [s["question_type"] for s in samples]}
        if "target" in samples[0]:
            batch["targets"] = torch.stack([s["target"] for s in samples])  # (B, A)
        return batch

    @staticmethod
    def bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), targets) * targets.shape[1]

    @staticmethod
    def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean over questions with any in-vocabulary answer of CE(logits, targets / targets.sum())."""
        mass = targets.sum(-1, keepdim=True)  # (B, 1)
        keep = mass[:, 0] > 0
        if not keep.any():
            return logits.sum() * 0.0
        return F.cross_entropy(logits[keep].float(), targets[keep] / mass[keep])

    @classmethod
    def criterion(cls, model: nn.Module, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        kind = getattr(model.config, "vqa_loss", "bce")
        return cls.soft_cross_entropy(logits, targets) if kind == "softmax" else cls.bce(logits, targets)

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model.vqa_logits(model(**model_inputs(batch)))  # (B, A)
        targets = batch["targets"]
        loss = self.criterion(model, logits, targets)
        score = targets.gather(1, logits.argmax(-1, keepdim=True)).mean()  # VQA score of the top answer
        return loss, {"vqa_score": float(score)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[dict]) -> dict[str, float]:
        preds, anns, losses = {}, [], []
        for batch in batches:
            logits = model.vqa_logits(model(**model_inputs(batch)))  # (B, A)
            losses.append(float(self.criterion(model, logits, batch["targets"])))
            for qid, a in zip(batch["question_id"], logits.argmax(-1).tolist()):
                preds[qid] = model.config.answers[a]
            anns += [{"question_id": q, "answers": [{"answer": a} for a in ans], "question_type": t,
                      "answer_type": t} for q, ans, t in zip(batch["question_id"], batch["answers"],
                                                             batch["question_type"])]
        if not anns:
            raise ValueError("evaluation got no batches: the validation set is empty")
        res = vqa_evaluate(preds, anns)
        return {"loss": sum(losses) / len(losses), "vqa_accuracy": res.overall,
                **{f"acc_{k.replace('/', '_')}": v for k, v in sorted(res.per_question_type.items())}}


@torch.no_grad()
def predict_answers(model: nn.Module, tokenizer, examples: list[VQAExample], batch_size: int = 64,
                    top_k: int = 1) -> dict:
    """{question_id: answer} (or a list of (answer, probability) when top_k > 1) for examples."""
    model.eval()
    device = next(model.parameters()).device
    task = VQATask(tokenizer, model.config.max_text_len)
    data = VQADataset(examples, FusionImageTransform.for_model(model.config))
    out = {}
    for start in progress(range(0, len(data), batch_size), desc="vqa", unit="batch", delay=2, leave=False):
        batch = move_to(task.collate([data[i] for i in range(start, min(start + batch_size, len(data)))]), device)
        probs = model.vqa_probs(model(**model_inputs(batch)))  # (B, A)
        vals, idx = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        for qid, v, i in zip(batch["question_id"], vals.tolist(), idx.tolist()):
            pairs = [(model.config.answers[j], p) for j, p in zip(i, v)]
            out[qid] = pairs[0][0] if top_k == 1 else pairs
    return out


def evaluate_vqa(model: nn.Module, tokenizer, examples: list[VQAExample], batch_size: int = 64) -> VQAResult:
    """Official VQA accuracy (overall, per question type, per answer type) of the classifier."""
    unlabelled = [e.question_id for e in examples if not e.answers]
    if unlabelled:
        raise ValueError(f"{len(unlabelled)} questions have no gold answers (e.g. {unlabelled[:3]})")
    return vqa_evaluate(predict_answers(model, tokenizer, examples, batch_size), annotations_of(examples))


@torch.no_grad()
def answer_questions(model: nn.Module, tokenizer, image, questions: list[str], top_k: int = 1) -> list[list]:
    """[(answer, probability), ...] (k best) for each question about one image (a path or PIL image)."""
    from ..data.images import load_image

    if not questions or any(not q.strip() for q in questions):
        raise ValueError("every question must be a non-empty string")
    if not getattr(model.config, "answers", None):
        raise ValueError(f"{type(model).__name__} has no answer classifier (not a VQA model)")
    model.eval()
    device = next(model.parameters()).device
    img = load_image(image) if not hasattr(image, "size") else image
    pixels = FusionImageTransform.for_model(model.config)(img)
    task = VQATask(tokenizer, model.config.max_text_len)
    batch = task.collate([{"pixel_values": pixels, "question": q, "answers": [], "question_id": i,
                           "question_type": ""} for i, q in enumerate(questions)])
    probs = model.vqa_probs(model(**model_inputs(move_to(batch, device))))  # (Q, A)
    vals, idx = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    return [[(model.config.answers[j], p) for j, p in zip(i, v)] for i, v in zip(idx.tolist(), vals.tolist())]
