"""Causal language modelling: next-token cross-entropy; perplexity in evaluation."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..train.task import Task


class CausalLMTask(Task):
    name = "lm"
    metric_for_best = "loss"

    def collate(self, samples: list[dict]) -> dict:
        return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        if getattr(getattr(model, "module", model), "fused_loss", False):  # unwrap DDP; compile delegates
            return model(batch["input_ids"], labels=batch["labels"]), {}  # fused head + cross-entropy
        logits = model(batch["input_ids"])  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=-100)
        return loss, {}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches) -> dict[str, float]:
        out = super().evaluate(model, batches)
        out["perplexity"] = math.exp(min(out["loss"], 50.0))
        return out
