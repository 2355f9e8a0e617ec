"""Training hyper-parameters shared by every task."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    max_steps: int = 1000
    max_minutes: float | None = None   # wall-clock budget; stops at whichever of the two comes first
    batch_size: int = 16               # global batch per optimizer step (before accumulation split)
    grad_accum: int = 1                # micro-batches per step; micro batch = batch_size // grad_accum
    lr: float = 1e-3
    min_lr: float | None = None        # cosine floor; default lr / 10
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float | None = 1.0
    eval_every: int = 200
    eval_batches: int = 20
    log_every: int = 10
    keep_last: int = 2                 # step checkpoints kept besides the best one
    seed: int = 1337
    device: str = "auto"               # auto | cpu | cuda | cuda:N
    precision: str = "fp32"            # fp32 | bf16 | fp16 (autocast; bf16/fp16 are for GPUs)
    compile: bool = False
    progress: bool = True

    def __post_init__(self):
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by grad_accum {self.grad_accum}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")

    @property
    def micro_batch(self) -> int:
        return self.batch_size // self.grad_accum
