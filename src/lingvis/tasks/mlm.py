"""BERT pretraining: masked-LM cross-entropy (+ next-sentence prediction); MLM and NSP accuracy."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.mlm import MLMCollator
from ..train.task import Task


class PretrainTask(Task):
    """Loss = MLM loss (+ NSP loss when the model has the NSP head and the batch has NSP labels)."""

    name = "bert-pretrain"
    metric_for_best = "loss"

    def __init__(self, collator: MLMCollator, eval_seed: int = 0):
        self.collator, self.eval_seed = collator, eval_seed

    def collate(self, samples: list) -> dict:
        return self.collator(samples)

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        labels = batch["mlm_labels"]  # (B, T), -100 where not predicted
        chosen = labels != -100
        out = model(batch["input_ids"], attention_mask=batch["attention_mask"],
                    token_type_ids=batch["token_type_ids"], mlm_positions=chosen)
        target = labels[chosen]  # (N,)
        mlm_loss = F.cross_entropy(out.logits.float(), target)
        metrics = {"mlm_loss": float(mlm_loss.detach()),
                   "mlm_acc": float((out.logits.argmax(-1) == target).float().mean())}
        loss = mlm_loss
        nsp = batch["nsp_labels"]
        if out.nsp_logits is not None and bool((nsp >= 0).all()):
            nsp_loss = F.cross_entropy(out.nsp_logits.float(), nsp)
            loss = loss + nsp_loss
            metrics.update(nsp_loss=float(nsp_loss.detach()),
                           nsp_acc=float((out.nsp_logits.argmax(-1) == nsp).float().mean()))
        return loss, metrics

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches) -> dict[str, float]:
        """Masks of the validation batches come from a fixed seed (comparable across evaluations); the
        training RNG stream is left untouched."""
        with torch.random.fork_rng():
            torch.manual_seed(self.eval_seed)
            return super().evaluate(model, batches)

    def tokens_in(self, batch: dict) -> int:
        return int(batch["attention_mask"].sum())
