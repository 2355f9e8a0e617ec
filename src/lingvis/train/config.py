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
    distributed: str = "auto"          # auto | none | ddp | fsdp; auto: DDP under torchrun (FSDP when a replica
                                       # would not fit), none in one process (see docs/distributed.md)
    activation_checkpointing: bool = False  # recompute each Block in backward: less memory, more compute
    lora_rank: int = 0                 # > 0: train LoRA adapters of this rank, freeze the rest (lingvis.lora)
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: str = "qkv,q,kv,proj,fc"  # attention/MLP projections that get adapters
    lora_train: str = ""               # comma-separated parameter-name parts kept trainable (e.g. a new head)
    log_to: tuple[str, ...] = ()       # experiment trackers: tensorboard, wandb (lingvis.train.callbacks)

    def __post_init__(self):
        if self.distributed not in ("auto", "none", "ddp", "fsdp"):
            raise ValueError(f"distributed must be auto, none, ddp or fsdp, got {self.distributed!r}")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0, got {self.lora_rank}")
        if self.batch_size % self.grad_accum:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by grad_accum {self.grad_accum}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        if isinstance(self.log_to, str):  # "tensorboard,wandb" from a config file
            self.log_to = tuple(t for t in self.log_to.split(",") if t)
        self.log_to = tuple(self.log_to)
        unknown = [t for t in self.log_to if t not in ("tensorboard", "wandb")]
        if unknown:
            raise ValueError(f"log_to: unknown tracker(s) {unknown}; choose from tensorboard, wandb")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")

    @property
    def micro_batch(self) -> int:
        return self.batch_size // self.grad_accum
