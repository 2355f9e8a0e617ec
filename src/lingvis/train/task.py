"""What a task gives the trainer: batching, a loss, and evaluation metrics."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

import torch
from torch import nn


class Task(ABC):
    """Subclasses implement `collate` and `loss`; `evaluate` defaults to averaging `loss` metrics.

    `loss(model, batch)` returns (scalar loss, {metric: float}); the trainer logs the metrics.
    `metric_for_best` names the eval metric that picks the best checkpoint.
    """

    name = "task"
    metric_for_best = "loss"
    greater_is_better = False

    @abstractmethod
    def collate(self, samples: list) -> dict:
        """Samples from the dataset -> one batch (a dict of tensors and lists)."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """(scalar loss, {metric: float}) of the model on one batch."""

    def tokens_in(self, batch: dict) -> int:
        """Count of tokens (or examples) in a batch, for throughput logs."""
        for key in ("input_ids", "pixel_values", "src_ids"):
            if key in batch:
                t = batch[key]
                return int(t.numel()) if key != "pixel_values" else int(t.shape[0])
        return 0

    def throughput_unit(self, batch: dict) -> str:
        """What `tokens_in` counts for this batch: "tokens", or "samples" (images)."""
        if type(self).tokens_in is not Task.tokens_in:
            return "tokens"
        key = next((k for k in ("input_ids", "pixel_values", "src_ids") if k in batch), None)
        return "samples" if key == "pixel_values" else "tokens"

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: Iterable[dict]) -> dict[str, float]:
        totals: dict[str, float] = {}
        n = 0
        for batch in batches:
            loss, metrics = self.loss(model, batch)
            for k, v in {"loss": float(loss), **metrics}.items():
                totals[k] = totals.get(k, 0.0) + v
            n += 1
        if n == 0:
            raise ValueError("evaluation got no batches: the validation set is empty")
        return {k: v / n for k, v in totals.items()}


def move_to(batch, device: torch.device):
    """Move every tensor in a (nested) batch to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(v, device) for v in batch)
    return batch
