"""AdamW with weight-decay groups (the schedules live in lingvis.train.schedules)."""
from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig
from .schedules import lr_at  # noqa: F401  (re-exported: the optimizer's schedule)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices (dim >= 2); do not decay biases, norms or 1-d scales. Embeddings decay as in nanoGPT."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; the fused kernel (one pass per tensor) on CPU and CUDA, except over FSDP-sharded DTensors."""
    fused = device.type in ("cpu", "cuda") and getattr(cfg, "distributed", "none") != "fsdp"
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             fused=fused or None)
