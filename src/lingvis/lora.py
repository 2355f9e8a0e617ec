"""LoRA: low-rank adapters on the attention and MLP projections of every lingvis family.

`apply_lora(model, LoRAConfig(rank=8))` swaps the chosen `nn.Linear` projections of each `nn.Attention`
(`qkv`, or `q` + `kv` for cross-attention, and `proj`) and `nn.MLP` (`fc`, `proj`) for `LoRALinear`,
which keeps the frozen weight under the same name and adds `lora_A` (r, in) and `lora_B` (out, r):
    y = x W^T + b + (alpha / r) * dropout(x) A^T B^T
Everything else is frozen except parameters whose names contain one of `train` (e.g. a new task head).
`merge_lora` folds B A into W and restores plain `nn.Linear`s; `lingvis.api.export_merged` writes a checkpoint that
plain `lingvis.load` opens (Hugging Face format where the family has one).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .nn.attention import Attention
from .nn.mlp import MLP

TARGETS = ("qkv", "q", "kv", "proj", "fc")
_OWNERS = (Attention, MLP)


@dataclass
class LoRAConfig:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = TARGETS   # projection names inside nn.Attention / nn.MLP
    train: tuple[str, ...] = ()          # parameter-name parts that stay trainable besides the adapters

    def __post_init__(self):
        self.targets, self.train = tuple(self.targets), tuple(self.train)
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.rank}")
        unknown = sorted(set(self.targets) - set(TARGETS))
        if unknown or not self.targets:
            raise ValueError(f"unknown LoRA target(s) {unknown or '(none given)'}; choose from {list(TARGETS)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class LoRALinear(nn.Linear):
    """An `nn.Linear` (same `weight`/`bias` names) plus a trainable low-rank update."""

    def __init__(self, in_features: int, out_features: int, bias: bool, rank: int, alpha: float,
                 dropout: float = 0.0):
        super().__init__(in_features, out_features, bias)
        self.rank, self.scale = rank, alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))  # zero: starts as the base model
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_dropout = nn.Dropout(dropout)

    @classmethod
    def wrap(cls, base: nn.Linear, cfg: LoRAConfig) -> "LoRALinear":
        m = cls(base.in_features, base.out_features, base.bias is not None, cfg.rank, cfg.alpha, cfg.dropout)
        m.to(device=base.weight.device, dtype=base.weight.dtype)
        m.weight, m.bias = base.weight, base.bias  # share the pretrained tensors
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        update = F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B)  # (..., r) -> (..., out)
        return F.linear(x, self.weight, self.bias) + self.scale * update

    def merged(self) -> nn.Linear:
        """A plain `nn.Linear` with W + (alpha/r) B A."""
        lin = nn.Linear(self.in_features, self.out_features, self.bias is not None,
                        device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            lin.weight.copy_(self.weight + self.scale * (self.lora_B @ self.lora_A))
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin


def _targets(model: nn.Module, cfg: LoRAConfig):
    skip = tuple(getattr(model, "lora_skip", ()))  # module-name prefixes a family keeps frozen (a LLaVA tower)
    for owner_name, owner in model.named_modules():
        if isinstance(owner, _OWNERS) and not (skip and owner_name.startswith(skip)):
            for name in cfg.targets:
                child = getattr(owner, name, None)
                if isinstance(child, nn.Linear):
                    yield owner_name, owner, name, child


def apply_lora(model: nn.Module, cfg: LoRAConfig) -> list[str]:
    """Add adapters in place and freeze the rest; return the names of the adapted projections."""
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError(f"{type(model).__name__} already has LoRA adapters")
    found = list(_targets(model, cfg))
    if not found:
        raise ValueError(f"{type(model).__name__} has no {list(cfg.targets)} projections inside "
                         "lingvis.nn Attention/MLP layers to adapt")
    for p in model.parameters():
        p.requires_grad_(False)
    names = []
    for owner_name, owner, name, child in found:
        setattr(owner, name, LoRALinear.wrap(child, cfg))
        names.append(f"{owner_name}.{name}")
    for pname, p in model.named_parameters():
        if ".lora_" in pname or any(part in pname for part in cfg.train):
            p.requires_grad_(True)
    model.lora_config = cfg
    return names


def lora_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if ".lora_A" in n or ".lora_B" in n}


@contextmanager
def adapters_disabled(model: nn.Module):
    """Within this block the model computes as its frozen base (every adapter update scaled by 0): the
    reference model of DPO with LoRA, without a second copy of the weights."""
    layers = [m for m in model.modules() if isinstance(m, LoRALinear)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no LoRA adapters to disable")
    scales = [m.scale for m in layers]
    for m in layers:
        m.scale = 0.0
    try:
        yield model
    finally:
        for m, s in zip(layers, scales):
            m.scale = s


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its weight, in place; parameters become trainable again."""
    for owner in list(model.modules()):
        for name, child in list(owner.named_children()):
            if isinstance(child, LoRALinear):
                setattr(owner, name, child.merged())
    for p in model.parameters():
        p.requires_grad_(True)
    if hasattr(model, "lora_config"):
        del model.lora_config
    return model
