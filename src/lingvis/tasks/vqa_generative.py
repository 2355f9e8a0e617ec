"""Generative VQA with the captioner (image tower + cross-attending GPT decoder): the decoder reads
`<bos> question answer:` as a prompt and learns to continue it with ` answer<eos>` (loss on the answer
only); prediction decodes greedily from the left-padded prompt. Scored with the official VQA accuracy."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import torch
from torch import nn

from ..beam import generate_tokens
from ..data.vqa import VQAExample, annotations_of
from ..eval.vqa import VQAResult, vqa_evaluate
from ..eval.vqa_normalize import normalize_vqa_answer
from ..generate import pad_left
from ..progress import progress
from ..train.task import Task, move_to
from .seq2seq import IGNORE, pad_right, smoothed_loss

PROMPT_SUFFIX = " answer:"


def majority_answer(answers: list[str]) -> str:
    """The most common normalised human answer (VQAv2's multiple_choice_answer); ties -> alphabetical."""
    counts = Counter(normalize_vqa_answer(a) for a in answers)
    return max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]


class GenerativeVQATask(Task):
    """Items from `VQADataset` (no vocabulary needed); batches {'pixels', 'input_ids', 'attention_mask',
    'labels', 'prompts', ...}. `evaluate` decodes answers and reports the official VQA accuracy."""

    name = "vqa_generative"
    metric_for_best = "vqa_accuracy"
    greater_is_better = True

    def __init__(self, tokenizer, bos_id: int, eos_id: int, pad_id: int, context: int, max_answer_tokens: int = 8):
        self.tokenizer, self.bos_id, self.eos_id, self.pad_id = tokenizer, bos_id, eos_id, pad_id
        self.max_answer_tokens = max_answer_tokens
        self.max_prompt = context - max_answer_tokens - 2  # question tokens kept (the end, with " answer:")
        if self.max_prompt < 2:
            raise ValueError(f"the decoder context of {context} tokens is too short for generative VQA")

    def prompt_ids(self, questions: list[str]) -> list[list[int]]:
        enc = self.tokenizer.encode_batch([q + PROMPT_SUFFIX for q in questions])
        return [[self.bos_id, *ids[-self.max_prompt:]] for ids in enc]

    def collate(self, samples: list[dict]) -> dict:
        prompts = self.prompt_ids([s["question"] for s in samples])
        batch = {"pixels": torch.stack([s["pixel_values"] for s in samples]), "prompts": prompts,
                 "question_id": [s["question_id"] for s in samples], "answers": [s["answers"] for s in samples],
                 "question_type": [s["question_type"] for s in samples]}
        if all(s["answers"] for s in samples):
            targets = self.tokenizer.encode_batch([" " + majority_answer(s["answers"]) for s in samples])
            seqs = [p + t[:self.max_answer_tokens] + [self.eos_id] for p, t in zip(prompts, targets)]
            labels = [[IGNORE] * (len(p) - 1) + s[len(p):] for p, s in zip(prompts, seqs)]
            batch["input_ids"] = pad_right([s[:-1] for s in seqs], self.pad_id)  # (B, T)
            batch["attention_mask"] = pad_right([[1] * (len(s) - 1) for s in seqs], 0)
            batch["labels"] = pad_right(labels, IGNORE)
        return batch

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch["pixels"], batch["input_ids"], attention_mask=batch["attention_mask"])  # (B, T, V)
        loss, acc = smoothed_loss(logits, batch["labels"], 0.0)
        return loss, {"token_acc": acc}

    def tokens_in(self, batch: dict) -> int:
        return int((batch["labels"] != IGNORE).sum())

    @torch.no_grad()
    def answer(self, model: nn.Module, batch: dict) -> list[str]:
        """Greedy answers for a collated batch."""
        ids, mask = pad_left(batch["prompts"], self.pad_id)
        ids, mask = ids.to(batch["pixels"].device), mask.to(batch["pixels"].device)
        view = model.decoder_view(model.encode(batch["pixels"]))
        out = generate_tokens(view, ids, attention_mask=mask, default_eos=self.eos_id, default_pad=self.pad_id,
                              max_new_tokens=self.max_answer_tokens + 1)[:, ids.shape[1]:]
        rows = [r[:r.index(self.eos_id)] if self.eos_id in r else r for r in out.tolist()]
        return [self.tokenizer.decode(r).strip() for r in rows]

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[dict]) -> dict[str, float]:
        batches = list(batches)
        out = super().evaluate(model, batches)
        preds, anns = {}, []
        for b in batches:
            preds.update(zip(b["question_id"], self.answer(model, b)))
            anns += [{"question_id": q, "answers": [{"answer": a} for a in ans], "question_type": t,
                      "answer_type": t} for q, ans, t in zip(b["question_id"], b["answers"], b["question_type"])]
        res = vqa_evaluate(preds, anns)
        out["vqa_accuracy"] = res.overall
        out.update({f"acc_{k.replace('/', '_')}": v for k, v in sorted(res.per_question_type.items())})
        return out


def generate_answers(model: nn.Module, tokenizer, examples: list[VQAExample], transform,
                     batch_size: int = 64, max_answer_tokens: int = 8) -> dict:
    """{question_id: generated answer} for examples (images preprocessed with `transform`)."""
    from ..data.vqa_dataset import VQADataset

    model.eval()
    c = model.config
    task = GenerativeVQATask(tokenizer, c.bos_id, c.eos_id, c.pad_id, model.context_length, max_answer_tokens)
    data, device, out = VQADataset(examples, transform), next(model.parameters()).device, {}
    for start in progress(range(0, len(data), batch_size), desc="vqa", unit="batch", delay=2, leave=False):
        items = [data[i] for i in range(start, min(start + batch_size, len(data)))]
        batch = move_to(task.collate([{**s, "answers": []} for s in items]), device)
        out.update(zip(batch["question_id"], task.answer(model, batch)))
    return out


def evaluate_generative_vqa(model: nn.Module, tokenizer, examples: list[VQAExample], transform) -> VQAResult:
    return vqa_evaluate(generate_answers(model, tokenizer, examples, transform), annotations_of(examples))
