"""Image classification: cross-entropy over class logits; accuracy and macro-F1 in evaluation."""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..eval.classification import precision_recall_f1
from ..train.task import Task


class ImageClassifyTask(Task):
    """Samples are {"image": (3, H, W) tensor, "label": int}."""

    name = "image-classify"
    metric_for_best = "accuracy"
    greater_is_better = True

    def collate(self, samples: list[dict]) -> dict:
        samples = [s for s in samples if s is not None]
        if not samples:
            raise ValueError("a batch has no loadable samples")
        return {"pixel_values": torch.stack([s["image"] for s in samples]),
                "labels": torch.tensor([int(s["label"]) for s in samples])}

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch["pixel_values"])  # (B, L)
        loss = F.cross_entropy(logits.float(), batch["labels"])
        return loss, {"accuracy": float((logits.argmax(-1) == batch["labels"]).float().mean())}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[dict]) -> dict[str, float]:
        losses, preds, golds = [], [], []
        for batch in batches:
            logits = model(batch["pixel_values"])
            losses.append(float(F.cross_entropy(logits.float(), batch["labels"])))
            preds += logits.argmax(-1).tolist()
            golds += batch["labels"].tolist()
        if not golds:
            raise ValueError("evaluation got no batches: the validation set is empty")
        macro = precision_recall_f1(golds, preds, average="macro")
        return {"loss": sum(losses) / len(losses), "accuracy": sum(p == g for p, g in zip(preds, golds)) / len(golds),
                "macro_f1": float(macro.f1)}
