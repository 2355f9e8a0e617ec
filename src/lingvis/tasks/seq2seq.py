"""Sequence-to-sequence training (translation): teacher-forced cross-entropy with label smoothing;
evaluation adds greedy-decoded corpus BLEU and chrF (sacrebleu; the Chinese tokenizer for Chinese targets)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..train.task import Task

IGNORE = -100


@dataclass
class EncodedPair:
    src: list[int]
    tgt: list[int]
    ref: str  # the target text, for BLEU


class EncodedPairs(Dataset):
    """Tokenised (source, target) pairs; sources and targets longer than the limits are cut. Sources get the
    tokenizer's special tokens (a Marian tokenizer appends </s>); the task adds eos to targets itself."""

    def __init__(self, sources: Sequence[str], targets: Sequence[str], tokenizer, max_src: int, max_tgt: int):
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
        src_ids = tokenizer.encode_batch(list(sources), add_special_tokens=True)  # Marian: + </s>
        tgt_ids = tokenizer.encode_batch(list(targets))
        self.items = []
        for i, (s, t) in enumerate(zip(src_ids, tgt_ids)):
            if not s or not t:
                raise ValueError(f"pair {i}: empty {'source' if not s else 'target'} after tokenisation "
                                 f"({sources[i]!r} -> {targets[i]!r})")
            self.items.append(EncodedPair(s[:max_src], t[:max_tgt - 1], targets[i]))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> EncodedPair:
        return self.items[i]


def pad_right(seqs: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """Right-pad token lists to a (B, T) tensor."""
    T = max(len(s) for s in seqs)
    out = torch.full((len(seqs), T), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.as_tensor(list(s), dtype=torch.long)
    return out


def teacher_forcing(targets: Sequence[Sequence[int]], start_id: int, eos_id: int, pad_id: int):
    """Decoder inputs `[start] + t` and labels `t + [eos]` (padding labelled IGNORE), both (B, T)."""
    tgt_in = pad_right([[start_id, *t] for t in targets], pad_id)
    labels = pad_right([[*t, eos_id] for t in targets], IGNORE)
    return tgt_in, labels


def smoothed_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> tuple[torch.Tensor, float]:
    """Label-smoothed cross-entropy over non-ignored positions and the token accuracy."""
    flat = logits.flatten(0, 1).float()  # (B*T, V)
    y = labels.flatten()
    loss = F.cross_entropy(flat, y, ignore_index=IGNORE, label_smoothing=smoothing)
    keep = y != IGNORE
    acc = (flat.argmax(-1)[keep] == y[keep]).float().mean().item() if keep.any() else 0.0
    return loss, acc


class Seq2SeqTask(Task):
    """Batches {'src_ids', 'src_mask', 'tgt_in', 'labels', 'refs'}; `evaluate` decodes greedily and
    reports BLEU/chrF (sacrebleu) besides the loss. The best checkpoint is the one with the highest BLEU."""

    name = "translate"
    metric_for_best = "bleu"
    greater_is_better = True

    def __init__(self, tokenizer, start_id: int, eos_id: int, pad_id: int, label_smoothing: float = 0.1,
                 target_lang: str | None = None, max_new_tokens: int = 64):
        self.tokenizer, self.start_id, self.eos_id, self.pad_id = tokenizer, start_id, eos_id, pad_id
        self.label_smoothing, self.target_lang, self.max_new_tokens = label_smoothing, target_lang, max_new_tokens

    def collate(self, samples: list[EncodedPair]) -> dict:
        src = [s.src for s in samples]
        src_ids = pad_right(src, self.pad_id)
        src_mask = pad_right([[1] * len(s) for s in src], 0)
        tgt_in, labels = teacher_forcing([s.tgt for s in samples], self.start_id, self.eos_id, self.pad_id)
        return {"src_ids": src_ids, "src_mask": src_mask, "tgt_in": tgt_in, "labels": labels,
                "refs": [s.ref for s in samples]}

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch["src_ids"], batch["tgt_in"], batch["src_mask"])  # (B, T, V)
        loss, acc = smoothed_loss(logits, batch["labels"], self.label_smoothing if model.training else 0.0)
        return loss, {"token_acc": acc}

    def tokens_in(self, batch: dict) -> int:
        return int(batch["src_mask"].sum()) + int((batch["labels"] != IGNORE).sum())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches) -> dict[str, float]:
        from ..eval.translation import corpus_bleu, corpus_chrf

        batches = list(batches)
        out = super().evaluate(model, batches)
        hyps, refs = [], []
        for b in batches:
            ids = model.generate(b["src_ids"], b["src_mask"], max_new_tokens=self.max_new_tokens)
            hyps += [self.tokenizer.decode(row[1:]) for row in cut_at_eos(ids, self.eos_id)]
            refs += b["refs"]
        out["bleu"] = corpus_bleu(hyps, refs, target_lang=self.target_lang).score
        out["chrf"] = corpus_chrf(hyps, refs).score
        return out


def cut_at_eos(ids: torch.Tensor, eos_id: int) -> list[list[int]]:
    """(B, L) generated rows -> token lists ending before the first eos (the start token is kept)."""
    rows = []
    for row in ids.tolist():
        rows.append(row[:row.index(eos_id, 1)] if eos_id in row[1:] else row)
    return rows
