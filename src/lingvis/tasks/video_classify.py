"""Video classification: cross-entropy over class logits; top-1/top-5 accuracy and macro-F1 in evaluation,
with several clips per video averaged (softmax scores) when the validation clips are (B, K, T, C, H, W)."""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..eval.classification import precision_recall_f1
from ..eval.video import topk_accuracy
from ..video.dataset import stack_videos
from .image_classify import ImageClassifyTask


class VideoClassifyTask(ImageClassifyTask):
    """Samples are {"video": (T, C, H, W) or (K, T, C, H, W) tensor, "label": int}; the training loss is the
    image task's (cross-entropy over the logits of `pixel_values`)."""

    name = "video-classify"

    def collate(self, samples: list[dict]) -> dict:
        samples = [s for s in samples if s is not None]
        if not samples:
            raise ValueError("a batch has no loadable videos")
        return {"pixel_values": stack_videos(samples), "labels": torch.tensor([int(s["label"]) for s in samples])}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[dict]) -> dict[str, float]:
        probs, golds = [], []
        for batch in batches:
            probs.append(model.probabilities(batch["pixel_values"]).float())  # (B, L), clips averaged
            golds.append(batch["labels"])
        if not golds:
            raise ValueError("evaluation got no batches: the validation set is empty")
        p, y = torch.cat(probs), torch.cat(golds)
        loss = F.nll_loss(p.clamp_min(1e-12).log(), y)
        macro = precision_recall_f1(y.tolist(), p.argmax(-1).tolist(), average="macro")
        top = topk_accuracy(p, y, ks=(1, 5))
        return {"loss": float(loss), "accuracy": top["top1"], "top5": top["top5"], "macro_f1": float(macro.f1),
                "videos": float(len(y))}
