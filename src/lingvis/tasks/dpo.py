"""Direct Preference Optimization (Rafailov et al., 2023): for a prompt x with a preferred completion y_w
and a rejected one y_l, with log-probabilities summed over the completion tokens,

    loss = -log sigmoid(beta * ((log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))))

The reference log-probabilities come from the batch (precomputed once with the frozen starting model),
from a frozen `reference` module, or, for a LoRA policy, from the same model with its adapters disabled.
Logged: rewards beta * (log pi - log ref) of both completions, their margin, the reward accuracy
(chosen reward > rejected reward) and the preference accuracy (the policy itself gives the chosen
completion the higher log-probability).

`rpo_alpha` (named as in TRL; RPO, Pang et al., 2024) adds `rpo_alpha` times the NLL of the chosen
completions, averaged over their tokens, to the DPO loss: the policy keeps producing the chosen answers
instead of only pushing the rejected ones down, which keeps DPO from over-optimising into degenerate
replies."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.chat_dataset import IGNORE
from ..lora import LoRALinear, adapters_disabled
from ..train.task import Task, move_to
from .chat_sft import pad_right


def token_logps(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, T) log p(labels[t] | input_ids[:t+1]), 0 where labels == -100."""
    logits = model(input_ids).float()  # (B, T, V)
    logp = logits.log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)  # (B, T)
    return logp * (labels != IGNORE)


def sequence_logps(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) sum over positions with labels != -100 of log p(labels[t] | input_ids[:t+1])."""
    return token_logps(model, input_ids, labels).sum(-1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float, label_smoothing: float = 0.0
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean loss, chosen rewards (B,), rejected rewards (B,)); `label_smoothing` > 0 is conservative DPO."""
    logits = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))  # (B,)
    losses = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return losses.mean(), beta * (policy_chosen - ref_chosen).detach(), beta * (policy_rejected - ref_rejected).detach()


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


class DPOTask(Task):
    """Items: `chosen_ids`/`chosen_labels` and `rejected_ids`/`rejected_labels` (T,), optionally the
    precomputed `ref_chosen`/`ref_rejected` floats. Chosen and rejected run as one (2B, T) batch."""

    name = "dpo"
    metric_for_best = "loss"

    def __init__(self, pad_id: int, beta: float = 0.1, reference: nn.Module | None = None,
                 label_smoothing: float = 0.0, rpo_alpha: float | None = None):
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        if rpo_alpha is not None and rpo_alpha < 0:
            raise ValueError(f"rpo_alpha must be >= 0 (or None), got {rpo_alpha}")
        self.rpo_alpha = rpo_alpha
        if not 0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
        self.pad_id, self.beta, self.label_smoothing = pad_id, beta, label_smoothing
        self.reference = reference.eval().requires_grad_(False) if reference is not None else None

    def collate(self, samples: list[dict]) -> dict:
        ids = [s["chosen_ids"] for s in samples] + [s["rejected_ids"] for s in samples]
        labels = [s["chosen_labels"] for s in samples] + [s["rejected_labels"] for s in samples]
        batch = {"input_ids": pad_right(ids, self.pad_id), "labels": pad_right(labels, IGNORE)}  # (2B, T)
        if all("ref_chosen" in s for s in samples):
            batch["ref_logps"] = torch.tensor([s["ref_chosen"] for s in samples] +
                                              [s["ref_rejected"] for s in samples], dtype=torch.float32)  # (2B,)
        return batch

    @torch.no_grad()
    def reference_logps(self, model: nn.Module, batch: dict) -> torch.Tensor:
        """(2B,) reference log-probabilities of the batch's completions."""
        if "ref_logps" in batch:
            return batch["ref_logps"]
        if self.reference is not None:
            return sequence_logps(self.reference, batch["input_ids"], batch["labels"])
        if any(isinstance(m, LoRALinear) for m in _unwrap(model).modules()):
            with adapters_disabled(_unwrap(model)):
                return sequence_logps(model, batch["input_ids"], batch["labels"])
        raise ValueError("DPO needs reference log-probabilities: precompute them into the data, pass a frozen "
                         "reference model, or train LoRA adapters (the adapter-free model is the reference)")

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        ref = self.reference_logps(model, batch)
        tokens = token_logps(model, batch["input_ids"], batch["labels"])  # (2B, T)
        policy = tokens.sum(-1)  # (2B,)
        B = policy.shape[0] // 2
        loss, chosen, rejected = dpo_loss(policy[:B], policy[B:], ref[:B], ref[B:], self.beta, self.label_smoothing)
        p = policy.detach()
        metrics = {
            "reward_chosen": float(chosen.mean()), "reward_rejected": float(rejected.mean()),
            "reward_margin": float((chosen - rejected).mean()),
            "reward_accuracy": float((chosen > rejected).float().mean()),
            "preference_accuracy": float((p[:B] > p[B:]).float().mean()),
            "logp_chosen": float(p[:B].mean()), "logp_rejected": float(p[B:].mean()),
        }
        if self.rpo_alpha is not None:  # NLL of the chosen completions, mean over their tokens
            nll = -tokens[:B].sum() / (batch["labels"][:B] != IGNORE).sum().clamp(min=1)
            loss = loss + self.rpo_alpha * nll
            metrics["nll_loss"] = float(nll.detach())
        return loss, metrics

    def tokens_in(self, batch: dict) -> int:
        return int((batch["labels"] != IGNORE).sum())


@torch.no_grad()
def pair_logps(model: nn.Module, items: Sequence[dict], pad_id: int, batch_size: int = 32) -> torch.Tensor:
    """(N, 2) log-probabilities of each item's chosen and rejected completion under `model` (eval mode)."""
    was_training = model.training
    model.eval()
    task = DPOTask(pad_id)
    device = next(model.parameters()).device
    rows = []
    try:
        for start in range(0, len(items), batch_size):
            chunk = [{k: v for k, v in s.items() if not k.startswith("ref_")} for s in items[start:start + batch_size]]
            batch = move_to(task.collate(chunk), device)
            logps = sequence_logps(model, batch["input_ids"], batch["labels"]).cpu()  # (2b,)
            rows.append(torch.stack([logps[:len(chunk)], logps[len(chunk):]], dim=1))  # (b, 2)
    finally:
        model.train(was_training)
    return torch.cat(rows) if rows else torch.empty(0, 2)


def precompute_reference(reference: nn.Module, items: Sequence[dict], pad_id: int, batch_size: int = 32) -> None:
    """Store `ref_chosen`/`ref_rejected` (log-probabilities under the frozen `reference`) in each item."""
    for item, (c, r) in zip(items, pair_logps(reference, items, pad_id, batch_size).tolist()):
        item["ref_chosen"], item["ref_rejected"] = c, r
