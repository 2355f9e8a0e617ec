"""Learning-rate schedules: linear warmup, then cosine, linear or warmup-stable-decay (WSD) to `min_lr` at
the horizon (the last step). The horizon is `max_steps`, or the step count a wall-clock budget allows
(lingvis.train.budget), so the decay ends where the run ends."""
from __future__ import annotations

import math

from .config import TrainConfig

SCHEDULES = ("cosine", "linear", "wsd")


def warmup_steps(cfg: TrainConfig, horizon: int | None = None) -> int:
    """Warmup steps: `cfg.warmup_steps`, at most a fifth of a budget-derived `horizon`."""
    if horizon is None:
        return cfg.warmup_steps
    return min(cfg.warmup_steps, max(1, horizon // 5))


def lr_at(step: int, cfg: TrainConfig, horizon: int | None = None) -> float:
    """Learning rate of optimizer step `step` (0-based). `horizon`: the step the decay ends at, when a time
    budget fixed it (None: `cfg.max_steps`, warmup as configured)."""
    end = cfg.max_steps if horizon is None else horizon
    warm = warmup_steps(cfg, horizon)
    min_lr = cfg.lr / 10 if cfg.min_lr is None else cfg.min_lr
    if step < warm:
        return cfg.lr * (step + 1) / warm
    span = max(1, end - warm)
    frac = min(1.0, (step - warm) / span)  # 0 -> 1 over the decay span
    if cfg.schedule == "cosine":
        return min_lr + 0.5 * (1 + math.cos(math.pi * frac)) * (cfg.lr - min_lr)
    if cfg.schedule == "linear":
        return cfg.lr - frac * (cfg.lr - min_lr)
    # wsd: constant, then a linear decay over the last `decay_fraction` of the steps after warmup
    stable = 1.0 - cfg.decay_fraction
    if frac <= stable:
        return cfg.lr
    return cfg.lr - (frac - stable) / cfg.decay_fraction * (cfg.lr - min_lr)
