"""Video QA with a captioner: the decoder continues the question with the answer. The loss is on the answer
(and its end): the question is the prompt, given at inference. `question_weight` > 0 adds the loss of the question
tokens at that weight: they name the objects (colour, shape) the video shows, a cheap extra signal for the
video encoder. A training item may be every question of one video: the video is
encoded once and its tokens repeated for each question. Evaluation: exact-match accuracy of greedy answers."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..train.task import Task
from .seq2seq import IGNORE, cut_at_eos, smoothed_loss, teacher_forcing


@dataclass
class QASample:
    pixels: torch.Tensor  # (T, C, H, W) the clip
    prompt: list[int]     # question ids (without bos)
    answer: list[int]     # answer ids (without eos)


class VideoQATask(Task):
    """Items are `QASample`s or lists of them sharing one clip (`pixels` of the first is used). Batches:
    {'pixels' (V, T, C, H, W), 'video_index' (B,), 'tgt_in' (B, L), 'labels' (B, L) (question positions
    IGNORE), 'prompts', 'answers'}. Best checkpoint: the highest validation answer accuracy."""

    name = "video-qa"
    metric_for_best = "qa_accuracy"
    greater_is_better = True

    def __init__(self, bos_id: int, eos_id: int, pad_id: int, label_smoothing: float = 0.1,
                 max_new_tokens: int = 8, question_weight: float = 0.0):
        if question_weight < 0:
            raise ValueError(f"question_weight must be >= 0, got {question_weight}")
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        self.question_weight = question_weight
        self.label_smoothing, self.max_new_tokens = label_smoothing, max_new_tokens

    def collate(self, items: list) -> dict:
        groups = [g if isinstance(g, list) else [g] for g in items if g]
        groups = [[s for s in g if s is not None] for g in groups]
        groups = [g for g in groups if g]
        if not groups:
            raise ValueError("every video of the batch failed to load")
        samples = [s for g in groups for s in g]
        tgt_in, labels = teacher_forcing([s.prompt + s.answer for s in samples], self.bos_id, self.eos_id,
                                         self.pad_id)
        question = torch.full_like(labels, IGNORE)
        for row, s in enumerate(samples):
            question[row, :len(s.prompt)] = labels[row, :len(s.prompt)]
            labels[row, :len(s.prompt)] = IGNORE  # labels[t] is token t: the question's are given
        index = torch.tensor([v for v, g in enumerate(groups) for _ in g])
        return {"pixels": torch.stack([g[0].pixels for g in groups]), "video_index": index, "tgt_in": tgt_in,
                "labels": labels, "question_labels": question, "prompts": [s.prompt for s in samples], "answers": [s.answer for s in samples]}

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        memory = model.encode(batch["pixels"])[batch["video_index"]]  # (B, N, C): each question's video tokens
        logits = model.decode(batch["tgt_in"], memory)  # (B, L, V)
        smoothing = self.label_smoothing if model.training else 0.0
        loss, acc = smoothed_loss(logits, batch["labels"], smoothing)
        if self.question_weight and model.training:  # the question's words (objects, colours) from the video
            q_loss, _ = smoothed_loss(logits, batch["question_labels"], smoothing)
            return loss + self.question_weight * q_loss, {"token_acc": acc, "question_loss": float(q_loss.detach())}
        return loss, {"token_acc": acc}

    def tokens_in(self, batch: dict) -> int:
        return int((batch["labels"] != IGNORE).sum())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[dict]) -> dict[str, float]:
        from ..beam import generate_tokens

        batches = list(batches)
        out = super().evaluate(model, batches)
        hits = total = 0
        for b in batches:
            memory = model.encode(b["pixels"])  # (V, N, C)
            for v, prompt, answer in zip(b["video_index"].tolist(), b["prompts"], b["answers"]):
                ids = torch.tensor([[self.bos_id, *prompt]], device=memory.device)
                n = max(1, min(self.max_new_tokens, model.context_length - ids.shape[1]))
                gen = generate_tokens(model.decoder_view(memory[v:v + 1]), ids, max_new_tokens=n,
                                      default_eos=self.eos_id, default_pad=self.pad_id)
                hits += int(cut_at_eos(gen[:, ids.shape[1]:], self.eos_id)[0] == list(answer))
                total += 1
        out["qa_accuracy"] = hits / max(total, 1)
        return out
