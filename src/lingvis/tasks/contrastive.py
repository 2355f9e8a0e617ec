"""Contrastive image-text training (CLIP): symmetric InfoNCE; retrieval recall in evaluation."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from ..eval.retrieval import retrieval_recall
from ..models.clip import contrastive_loss
from ..train.task import Task

Tokenize = Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]


class ContrastiveTask(Task):
    """Samples are {"image": (3, H, W) tensor, "text": str}; `tokenize` turns texts into
    (input_ids, attention_mask) for the model's text tower (see `CLIP.tokenize`)."""

    name = "clip"
    metric_for_best = "mean_R@1"
    greater_is_better = True

    def __init__(self, tokenize: Tokenize):
        self.tokenize = tokenize

    def collate(self, samples: list[dict]) -> dict:
        samples = [s for s in samples if s is not None]
        if not samples:
            raise ValueError("a batch has no loadable samples")
        ids, mask = self.tokenize([s["text"] for s in samples])
        return {"pixel_values": torch.stack([s["image"] for s in samples]), "input_ids": ids, "attention_mask": mask}

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        img = model.encode_image(batch["pixel_values"])  # (B, P)
        txt = model.encode_text(batch["input_ids"], batch["attention_mask"])  # (B, P)
        scale = model.scale()
        loss = contrastive_loss(img, txt, scale)
        with torch.no_grad():
            acc = (img @ txt.t()).argmax(dim=1).eq(torch.arange(len(img), device=img.device)).float().mean()
        return loss, {"logit_scale": float(scale.detach()), "batch_acc": float(acc)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[dict]) -> dict[str, float]:
        """Loss averaged over batches, and R@1/5 over all validation pairs pooled together."""
        imgs, txts, losses = [], [], []
        for batch in batches:
            img = model.encode_image(batch["pixel_values"])
            txt = model.encode_text(batch["input_ids"], batch["attention_mask"])
            losses.append(float(contrastive_loss(img, txt, model.scale())))
            imgs.append(img)
            txts.append(txt)
        if not imgs:
            raise ValueError("evaluation got no batches: the validation set is empty")
        img, txt = torch.cat(imgs), torch.cat(txts)  # (N, P) each, pair i = (image i, text i)
        r = retrieval_recall(img @ txt.t(), torch.arange(len(txt)), ks=(1, 5))
        return {"loss": sum(losses) / len(losses), **r, "mean_R@1": (r["t2i_R@1"] + r["i2t_R@1"]) / 2,
                "pairs": float(len(txt))}
