"""Training hyper-parameters shared by every task."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    max_steps: int = 1000
    max_minutes: float | None = None   # wall-clock budget; stops at whichever of the two comes first
    budget_clock: str = "wall"         # what max_minutes measures: wall (time.perf_counter) | cpu (process CPU time)
    batch_size: int = 16               # global batch per optimizer step (before accumulation split)
    grad_accum: int = 1                # micro-batches per step; micro batch = batch_size // grad_accum
    lr: float = 1e-3
    lr_scale: dict[str, float] = field(default_factory=dict)  # parameter-name prefix -> lr multiplier (new heads)
    min_lr: float | None = None        # learning rate at the end of the decay; default lr / 10
    warmup_steps: int = 100            # linear warmup (at most a fifth of a budget-derived horizon)
    schedule: str = "cosine"           # cosine | linear | wsd (warmup-stable-decay), ending at the horizon
    decay_fraction: float = 0.2        # wsd: share of the post-warmup steps spent decaying
    weight_decay: float = 0.1
    optimizer: str = "adamw"           # adamw | muon (Muon on hidden matrices, AdamW on embeddings, biases, norms)
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float | None = 1.0
    eval_every: int | None = None      # None: 200, or with max_minutes adapted to keep evaluation cheap
    eval_batches: int | None = None    # None: 20, or with max_minutes sized from the measured step time
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
        self.lr_scale = parse_lr_scale(self.lr_scale)
        if self.schedule not in ("cosine", "linear", "wsd"):
            raise ValueError(f"schedule must be cosine, linear or wsd, got {self.schedule!r}")
        if not 0.0 < self.decay_fraction <= 1.0:
            raise ValueError(f"decay_fraction must be in (0, 1], got {self.decay_fraction}")
        if self.optimizer not in ("adamw", "muon"):
            raise ValueError(f"optimizer must be adamw or muon, got {self.optimizer!r}")
        if self.optimizer == "muon" and (self.precision == "fp16" or self.distributed == "fsdp"):
            raise ValueError("optimizer muon does not run with precision fp16 (loss scaling) or FSDP; use adamw")
        if self.budget_clock not in ("wall", "cpu"):
            raise ValueError(f"budget_clock must be wall or cpu, got {self.budget_clock!r}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be > 0, got {self.max_minutes}")
        for name in ("eval_every", "eval_batches"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")

    @property
    def micro_batch(self) -> int:
        return self.batch_size // self.grad_accum


def parse_lr_scale(spec: dict | str | None) -> dict[str, float]:
    """{prefix: factor} from a dict or "vqa_head=10,image.stem.geometry=5" (CLI / config files)."""
    if not spec:
        return {}
    if isinstance(spec, str):
        pairs = [item.split("=", 1) for item in spec.split(",") if item.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"lr_scale must be PREFIX=FACTOR[,PREFIX=FACTOR...], got {spec!r}")
        spec = {k.strip(): v for k, v in pairs}
    out = {}
    for k, v in spec.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"lr_scale[{k!r}] must be a number, got {v!r}") from None
        if not out[str(k)] > 0:
            raise ValueError(f"lr_scale[{k!r}] must be > 0, got {v!r}")
    return out
