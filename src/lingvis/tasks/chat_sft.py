"""Supervised chat fine-tuning: next-token cross-entropy on assistant tokens only (labels are -100
elsewhere); packed rows get a block-diagonal causal mask and per-conversation positions. Evaluation adds
the held-out exact match of greedy replies to each conversation's last prompt."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.chat_dataset import IGNORE
from ..generate import generate_ids, pad_left
from ..train.task import Task
from .packed_attention import document_mask


def pad_right(rows: Sequence[torch.Tensor], value: int) -> torch.Tensor:
    """1-D tensors -> (B, T) right-padded with `value`."""
    T = max(len(r) for r in rows)
    out = torch.full((len(rows), T), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


@torch.no_grad()
def greedy_replies(model: nn.Module, prompts: Sequence[Sequence[int]], decode: Callable[[list[int]], str],
                   eos_ids: Sequence[int], pad_id: int, max_new_tokens: int) -> list[str]:
    """Greedy continuation of each prompt (left-padded batch) up to an eos id, decoded."""
    ids, mask = pad_left(prompts, pad_id)  # (B, T)
    device = next(model.parameters()).device
    room = model.context_length - ids.shape[1]
    if room < 1:
        raise ValueError(f"a prompt of {ids.shape[1]} tokens leaves no room in the context of {model.context_length}")
    was_training = model.training
    model.eval()
    try:
        out = generate_ids(model, ids.to(device), mask.to(device), max_new_tokens=min(max_new_tokens, room),
                           eos_ids=list(eos_ids))[:, ids.shape[1]:]
    finally:
        model.train(was_training)
    replies = []
    for row in out.tolist():
        ends = [row.index(e) for e in eos_ids if e in row]
        replies.append(decode(row[:min(ends)] if ends else row))
    return replies


class ChatSFTTask(Task):
    """Items from `lingvis.data.chat_dataset`: `input_ids`/`labels` (T,), packed rows also `position_ids`
    and `doc_ids`, evaluation items also `prompt_ids` and `answer`."""

    name = "chat_sft"
    metric_for_best = "loss"

    def __init__(self, tokenizer, max_new_tokens: int = 32):
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_id if tokenizer.pad_id is not None else (tokenizer.eos_id or 0)
        self.eos_ids = tokenizer.eos_ids
        if not self.eos_ids:
            raise ValueError("chat fine-tuning needs a tokenizer with an eos token (the end of each reply)")
        self.max_new_tokens = max_new_tokens

    def collate(self, samples: list[dict]) -> dict:
        ids = [s["input_ids"] for s in samples]
        batch = {"input_ids": pad_right(ids, self.pad_id), "labels": pad_right([s["labels"] for s in samples], IGNORE),
                 "n_tokens": sum(len(i) for i in ids)}
        if any("doc_ids" in s for s in samples):
            batch["position_ids"] = pad_right([s.get("position_ids", torch.arange(len(s["input_ids"])))
                                               for s in samples], 0)
            batch["doc_ids"] = pad_right([s.get("doc_ids", torch.zeros(len(s["input_ids"]), dtype=torch.long))
                                          for s in samples], -1)
        if all("answer" in s for s in samples):
            batch["prompt_ids"] = [list(s["prompt_ids"]) for s in samples]
            batch["answer"] = [s["answer"] for s in samples]
        return batch

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        packed = "doc_ids" in batch
        extra = {"position_ids": batch["position_ids"], "attn_mask": document_mask(batch["doc_ids"])} if packed else {}
        if getattr(getattr(model, "module", model), "fused_loss", False):
            return model(batch["input_ids"], labels=batch["labels"], **extra), {}
        logits = model(batch["input_ids"], **extra)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE), {}

    def tokens_in(self, batch: dict) -> int:
        """Tokens the model reads (padding excluded), for the throughput log."""
        return int(batch["n_tokens"])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[dict]) -> dict[str, float]:
        batches = list(batches)
        out = super().evaluate(model, batches)
        hits = total = 0
        for b in batches:
            if "answer" not in b:
                continue
            replies = greedy_replies(model, b["prompt_ids"], self.tokenizer.decode, self.eos_ids, self.pad_id,
                                     self.max_new_tokens)
            hits += sum(r.strip() == a.strip() for r, a in zip(replies, b["answer"]))
            total += len(replies)
        if total:
            out["exact_match"] = hits / total
        return out
