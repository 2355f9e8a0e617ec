"""Extractive question answering (SQuAD v1.1 / v2.0): the training task, prediction, official EM/F1."""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ..data.tasks_text import QAExample
from ..eval.squad import squad_evaluate
from ..train.task import Task
from .bert_inputs import collate_inputs, model_max_len, run_bucketed
from .qa_features import QAWindows, decode_answers, encode_qa


class QATask(Task):
    """Mean of start and end cross-entropy; evaluation decodes answers and scores official EM/F1 on the
    validation examples whose windows it saw."""

    name = "qa"
    metric_for_best = "f1"
    greater_is_better = True

    def __init__(self, pad_id: int, val_examples: list[QAExample], windows: QAWindows, version: str = "v1.1",
                 no_answer: bool = False):
        self.pad_id, self.examples, self.windows = pad_id, val_examples, windows
        self.version, self.no_answer = version, no_answer

    def collate(self, samples: list[dict]) -> dict:
        batch = collate_inputs(samples, self.pad_id)
        batch["start_positions"] = torch.tensor([s["start_pos"] for s in samples], dtype=torch.long)
        batch["end_positions"] = torch.tensor([s["end_pos"] for s in samples], dtype=torch.long)
        batch["features"] = [{k: s[k] for k in ("example", "ctx_start", "offsets")} for s in samples]
        return batch

    def _forward(self, model, batch):
        out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        loss = (F.cross_entropy(out.start_logits.float(), batch["start_positions"])
                + F.cross_entropy(out.end_logits.float(), batch["end_positions"])) / 2
        return out, loss

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        out, loss = self._forward(model, batch)
        both = (out.start_logits.argmax(-1) == batch["start_positions"]) & (
            out.end_logits.argmax(-1) == batch["end_positions"])
        return loss, {"span_acc": float(both.float().mean())}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches) -> dict[str, float]:
        feats, starts, ends, losses = [], [], [], []
        for batch in batches:
            out, loss = self._forward(model, batch)
            losses.append(float(loss))
            feats += batch["features"]
            starts += list(out.start_logits.float().cpu())
            ends += list(out.end_logits.float().cpu())
        if not feats:
            raise ValueError("evaluation got no batches: the validation set is empty")
        answers = decode_answers(self.examples, feats, starts, ends, self.windows, self.no_answer)
        refs = {self.examples[i].id: [a for a, _ in self.examples[i].answers] for i in answers}
        preds = {self.examples[i].id: a["answer"] for i, a in answers.items()}
        res = squad_evaluate(refs, preds, version="v2.0" if self.version == "v2.0" else "v1.1")
        return {"loss": sum(losses) / len(losses), "exact": res.exact, "f1": res.f1}


def predict_qa(model, tokenizer, examples: list[QAExample], max_len: int | None = None, stride: int | None = None,
               null_threshold: float = 0.0, windows: QAWindows | None = None) -> list[dict]:
    """[{"id", "answer", "score", "start", "end", "no_answer"}] in example order (start/end: characters).
    Windows default to min(384, max_positions) tokens overlapping by min(128, max_len / 4)."""
    if model.config.head != "qa":
        raise ValueError(f"this model's head is {model.config.head!r}, not extractive QA")
    base = windows or QAWindows()
    length = model_max_len(model, max_len or min(base.max_len, model.config.max_positions))
    cfg = dataclasses.replace(base, max_len=length, stride=min(base.stride, length // 4) if stride is None else stride)
    feats = encode_qa(tokenizer, examples, cfg)
    starts: list = [None] * len(feats)
    ends: list = [None] * len(feats)

    def keep(out, batch, idx):
        for row, i in enumerate(idx):
            starts[i], ends[i] = out.start_logits[row].float().cpu(), out.end_logits[row].float().cpu()

    run_bucketed(model.eval(), feats, tokenizer.pad_id or 0, keep)
    answers = decode_answers(examples, feats, starts, ends, cfg, model.config.no_answer, null_threshold)
    return [{"id": ex.id, **{k: answers[i][k] for k in ("answer", "score", "start", "end", "no_answer")}}
            for i, ex in enumerate(examples)]


def evaluate_squad(model, tokenizer, examples: list[QAExample], version: str, **kw) -> dict:
    """Official SQuAD EM/F1 (percent) of the model's answers on `examples`."""
    preds = predict_qa(model, tokenizer, examples, **kw)
    refs = {ex.id: [a for a, _ in ex.answers] for ex in examples}
    res = squad_evaluate(refs, {p["id"]: p["answer"] for p in preds}, version=version)
    return dataclasses.asdict(res)
