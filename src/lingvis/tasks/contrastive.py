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

    # what differs between media (images here; videos in VideoContrastiveTask)
    noun = "samples"

    def stack(self, samples: list[dict]) -> torch.Tensor:
        return torch.stack([s["image"] for s in samples])  # (B, 3, H, W)

    def encode_media(self, model: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        return model.encode_image(pixels)  # (B, P)

    def retrieval(self, sim: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Recall over the (N media, N texts) similarity matrix, with the mean R@1 of both directions."""
        r = retrieval_recall(sim, targets, ks=(1, 5))
        return {**r, "mean_R@1": (r["t2i_R@1"] + r["i2t_R@1"]) / 2}

    def collate(self, samples: list[dict]) -> dict:
        samples = [s for s in samples if s is not None]
        if not samples:
            raise ValueError(f"a batch has no loadable {self.noun}")
        ids, mask = self.tokenize([s["text"] for s in samples])
        return {"pixel_values": self.stack(samples), "input_ids": ids, "attention_mask": mask}

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        med = self.encode_media(model, batch["pixel_values"])  # (B, P)
        txt = model.encode_text(batch["input_ids"], batch["attention_mask"])  # (B, P)
        scale = model.scale()
        loss = contrastive_loss(med, txt, scale)
        with torch.no_grad():
            acc = (med @ txt.t()).argmax(dim=1).eq(torch.arange(len(med), device=med.device)).float().mean()
        return loss, {"logit_scale": float(scale.detach()), "batch_acc": float(acc)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[dict]) -> dict[str, float]:
        """Loss averaged over batches; retrieval metrics over all validation pairs pooled together."""
        meds, txts, losses = [], [], []
        for batch in batches:
            med = self.encode_media(model, batch["pixel_values"])
            txt = model.encode_text(batch["input_ids"], batch["attention_mask"])
            losses.append(float(contrastive_loss(med, txt, model.scale())))
            meds.append(med)
            txts.append(txt)
        if not meds:
            raise ValueError("evaluation got no batches: the validation set is empty")
        med, txt = torch.cat(meds), torch.cat(txts)  # (N, P) each, pair i = (medium i, text i)
        m = self.retrieval((med @ txt.t()).cpu(), torch.arange(len(txt)))
        return {"loss": sum(losses) / len(losses), **m, "pairs": float(len(txt))}
