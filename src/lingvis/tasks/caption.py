"""Image captioning: teacher-forced cross-entropy with label smoothing on (image, caption) pairs;
evaluation decodes greedily and scores CIDEr-D and BLEU-4 against every reference caption of an image."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

from ..train.task import Task
from .seq2seq import IGNORE, cut_at_eos, smoothed_loss, teacher_forcing


@dataclass
class CaptionSample:
    pixels: torch.Tensor  # (3, H, W)
    ids: list[int]        # the caption to learn (without bos/eos)
    refs: list[str]       # every reference caption of the image (for CIDEr / BLEU)


class CaptionPairs(Dataset):
    """(image, caption) training pairs over any indexable image source.

    `load_image(i)` returns a PIL image for image i; `captions[i]` lists its captions. With `all_captions`
    each caption is its own sample (training); otherwise one sample per image with its first caption."""

    def __init__(self, load_image: Callable[[int], object], captions: Sequence[Sequence[str]], tokenizer,
                 transform: Callable, max_len: int, all_captions: bool = True):
        self.load_image, self.transform, self.captions = load_image, transform, [list(c) for c in captions]
        self.ids: dict[str, list[int]] = {}
        texts = sorted({t for caps in self.captions for t in caps})
        for text, ids in zip(texts, tokenizer.encode_batch(texts)):
            self.ids[text] = ids[:max_len - 1]
        for i, caps in enumerate(self.captions):
            if not caps or any(not self.ids[c] for c in caps):
                raise ValueError(f"image {i} has an empty caption: {caps!r}")
        self.index = [(i, j) for i, caps in enumerate(self.captions)
                      for j in (range(len(caps)) if all_captions else range(1))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> CaptionSample:
        i, j = self.index[k]
        caps = self.captions[i]
        return CaptionSample(self.transform(self.load_image(i)), self.ids[caps[j]], caps)


class CaptionTask(Task):
    """Batches {'pixels', 'tgt_in', 'labels', 'refs'}; `evaluate` adds CIDEr-D and BLEU-4 of greedy captions.
    The best checkpoint is the one with the highest CIDEr-D."""

    name = "caption"
    metric_for_best = "cider"
    greater_is_better = True

    def __init__(self, tokenizer, bos_id: int, eos_id: int, pad_id: int, label_smoothing: float = 0.1,
                 max_new_tokens: int = 32):
        self.tokenizer, self.bos_id, self.eos_id, self.pad_id = tokenizer, bos_id, eos_id, pad_id
        self.label_smoothing, self.max_new_tokens = label_smoothing, max_new_tokens

    def collate(self, samples: list[CaptionSample]) -> dict:
        samples = [s for s in samples if s is not None]
        if not samples:
            raise ValueError("every image of the batch failed to load")
        tgt_in, labels = teacher_forcing([s.ids for s in samples], self.bos_id, self.eos_id, self.pad_id)
        return {"pixels": torch.stack([s.pixels for s in samples]), "tgt_in": tgt_in, "labels": labels,
                "refs": [s.refs for s in samples]}

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch["pixels"], batch["tgt_in"])  # (B, T, V)
        loss, acc = smoothed_loss(logits, batch["labels"], self.label_smoothing if model.training else 0.0)
        return loss, {"token_acc": acc}

    def tokens_in(self, batch: dict) -> int:
        return int((batch["labels"] != IGNORE).sum())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches) -> dict[str, float]:
        from ..eval.captioning import caption_scores

        batches = list(batches)
        out = super().evaluate(model, batches)
        refs, hyps = {}, {}
        for b in batches:
            ids = model.generate(b["pixels"], max_new_tokens=self.max_new_tokens)
            for row, r in zip(cut_at_eos(ids, self.eos_id), b["refs"]):
                hyps[len(hyps)] = self.tokenizer.decode(row[1:])
                refs[len(refs)] = r
        scores = caption_scores(refs, hyps)
        out["cider"], out["bleu4"] = scores["CIDEr-D"], scores["BLEU-4"]
        return out
