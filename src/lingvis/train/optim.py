"""The optimizer: AdamW with weight-decay groups, or Muon on the hidden matrices with AdamW on the rest
(the schedules live in lingvis.train.schedules)."""
from __future__ import annotations

import torch
from torch import nn

from .config import TrainConfig
from .schedules import lr_at  # noqa: F401  (re-exported: the optimizer's schedule)


def _scale_of(name: str, lr_scale: dict[str, float]) -> float:
    """Multiplier of the longest prefix (whole name parts) of `name` in `lr_scale`, else 1."""
    hits = [k for k in lr_scale if name == k or name.startswith(k + ".")]
    return lr_scale[max(hits, key=len)] if hits else 1.0


def param_groups(model: nn.Module, weight_decay: float, lr_scale: dict[str, float] | None = None,
                 params: list | None = None) -> list[dict]:
    """Decay matrices (dim >= 2); do not decay biases, norms or 1-d scales. Embeddings decay as in nanoGPT.
    `lr_scale` ({parameter-name prefix: factor}, e.g. a new head) splits each group by learning-rate
    multiplier; every group carries its `lr_scale` (the trainer sets lr = schedule * lr_scale). `params`
    limits the groups to those parameters (the rest of a Muon + AdamW split)."""
    lr_scale = lr_scale or {}
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    unused = [k for k in lr_scale if not any(n == k or n.startswith(k + ".") for n, _ in named)]
    if unused:
        raise ValueError(f"lr_scale: no trainable parameter of {type(model).__name__} starts with "
                         f"{', '.join(map(repr, unused))} (e.g. {named[0][0] if named else 'none'!r})")
    if params is not None:
        keep = {id(p) for p in params}
        named = [(n, p) for n, p in named if id(p) in keep]
    groups: dict[tuple[bool, float], list] = {(True, 1.0): [], (False, 1.0): []}
    for n, p in named:
        groups.setdefault((p.dim() >= 2, _scale_of(n, lr_scale)), []).append(p)
    return [{"params": ps, "weight_decay": weight_decay if decay else 0.0, "lr_scale": scale}
            for (decay, scale), ps in groups.items() if ps or scale == 1.0]


def muon_params(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(hidden matrices for Muon, the rest for AdamW): Muon takes the trainable weights of `nn.Linear`
    layers, except one shared with an embedding (a tied output head); embeddings, positions, biases and
    norms stay on AdamW."""
    embedding = {id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)} - embedding
    hidden, rest = [], []
    for p in model.parameters():
        if p.requires_grad:
            (hidden if id(p) in linear and p.dim() == 2 else rest).append(p)
    return hidden, rest


class MuonAdamW:
    """Muon over the hidden matrices and AdamW over the rest, stepped together. Muon's update is scaled to
    AdamW's RMS (`adjust_lr_fn="match_rms_adamw"`, Moonshot's rule), so one learning rate and schedule
    serve both; `param_groups` lists the groups of both, which is where the trainer sets the rate."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, fused: bool | None):
        hidden, rest = muon_params(model)
        if not hidden:
            raise ValueError("optimizer muon: the model has no trainable hidden matrices; use adamw")
        names = {id(p): n for n, p in model.named_parameters()}
        by_scale: dict[float, list] = {}
        for p in hidden:
            by_scale.setdefault(_scale_of(names[id(p)], cfg.lr_scale or {}), []).append(p)
        groups = [{"params": ps, "lr_scale": scale} for scale, ps in by_scale.items()]
        self.muon = torch.optim.Muon(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=0.95,
                                     nesterov=True, adjust_lr_fn="match_rms_adamw")
        self.adamw = torch.optim.AdamW(param_groups(model, cfg.weight_decay, cfg.lr_scale, rest), lr=cfg.lr,
                                       betas=(cfg.beta1, cfg.beta2), fused=fused)

    @property
    def param_groups(self) -> list[dict]:
        return self.muon.param_groups + self.adamw.param_groups

    @property
    def state(self) -> dict:
        return {**self.muon.state, **self.adamw.state}

    def step(self, closure=None):
        if closure is not None:
            raise ValueError("MuonAdamW.step takes no closure")
        self.muon.step()
        self.adamw.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"muon", "adamw"}:
            raise ValueError(f"optimizer state has keys {sorted(state)}, not a Muon + AdamW state (muon, adamw): "
                             "was the checkpoint trained with --optimizer adamw?")
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device):
    """AdamW (the fused kernel on CPU and CUDA, except over FSDP-sharded DTensors), or Muon + AdamW."""
    fused = device.type in ("cpu", "cuda") and getattr(cfg, "distributed", "none") != "fsdp"
    if getattr(cfg, "optimizer", "adamw") == "muon":
        return MuonAdamW(model, cfg, fused or None)
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay, cfg.lr_scale), lr=cfg.lr,
                             betas=(cfg.beta1, cfg.beta2),
                             fused=fused or None)
