"""AdamW with weight-decay groups (the schedules live in lingvis.train.schedules)."""
from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig
from .schedules import lr_at  # noqa: F401  (re-exported: the optimizer's schedule)


def _scale_of(name: str, lr_scale: dict[str, float]) -> float:
    """Multiplier of the longest prefix (whole name parts) of `name` in `lr_scale`, else 1."""
    hits = [k for k in lr_scale if name == k or name.startswith(k + ".")]
    return lr_scale[max(hits, key=len)] if hits else 1.0


def param_groups(model: nn.Module, weight_decay: float, lr_scale: dict[str, float] | None = None) -> list[dict]:
    """Decay matrices (dim >= 2); do not decay biases, norms or 1-d scales. Embeddings decay as in nanoGPT.
    `lr_scale` ({parameter-name prefix: factor}, e.g. a new head) splits each group by learning-rate
    multiplier; every group carries its `lr_scale` (the trainer sets lr = schedule * lr_scale)."""
    lr_scale = lr_scale or {}
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    unused = [k for k in lr_scale if not any(n == k or n.startswith(k + ".") for n, _ in named)]
    if unused:
        raise ValueError(f"lr_scale: no trainable parameter of {type(model).__name__} starts with "
                         f"{', '.join(map(repr, unused))} (e.g. {named[0][0] if named else 'none'!r})")
    groups: dict[tuple[bool, float], list] = {(True, 1.0): [], (False, 1.0): []}
    for n, p in named:
        groups.setdefault((p.dim() >= 2, _scale_of(n, lr_scale)), []).append(p)
    return [{"params": ps, "weight_decay": weight_decay if decay else 0.0, "lr_scale": scale}
            for (decay, scale), ps in groups.items() if ps or scale == 1.0]


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; the fused kernel (one pass per tensor) on CPU and CUDA, except over FSDP-sharded DTensors."""
    fused = device.type in ("cpu", "cuda") and getattr(cfg, "distributed", "none") != "fsdp"
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay, cfg.lr_scale), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             fused=fused or None)
