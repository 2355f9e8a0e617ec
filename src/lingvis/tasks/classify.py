"""Sequence classification (single texts or pairs): features, the training task, prediction.

Over-long inputs are truncated longest-first to `max_len` tokens ([CLS] A [SEP] B [SEP] included);
`encode_classification` reports how many examples were cut."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.tasks_text import TextExample, check_labels
from ..eval import accuracy, precision_recall_f1
from ..train.task import Task
from .bert_inputs import collate_inputs, model_max_len, pack, run_bucketed, special_ids


def encode_classification(tokenizer, examples: list[TextExample], labels: list[str] | None,
                          max_len: int) -> tuple[list[dict], int]:
    """Features {ids, types, label (id or -100), source} and the number of truncated examples.
    With `labels`, every example must carry a known label."""
    cls, sep = special_ids(tokenizer)
    if labels is not None:
        check_labels(examples, labels)
    index = {name: i for i, name in enumerate(labels or [])}
    a_ids = tokenizer.encode_batch([ex.text for ex in examples])
    b_ids = tokenizer.encode_batch([ex.text_pair or "" for ex in examples])
    feats, cut = [], 0
    for ex, a, b in zip(examples, a_ids, b_ids):
        ids, types, truncated = pack(cls, sep, a, b if ex.text_pair is not None else None, max_len)
        cut += truncated
        feats.append({"ids": ids, "types": types, "label": index.get(ex.label, -100), "source": ex.source,
                      "truncated": truncated})
    return feats, cut


class ClassifyTask(Task):
    """Cross-entropy over the pooled [CLS] logits; evaluation reports accuracy and macro-F1."""

    name = "classify"
    metric_for_best = "accuracy"
    greater_is_better = True

    def __init__(self, pad_id: int, labels: list[str]):
        self.pad_id, self.labels = pad_id, labels

    def collate(self, samples: list[dict]) -> dict:
        batch = collate_inputs(samples, self.pad_id)
        batch["labels"] = torch.tensor([s["label"] for s in samples], dtype=torch.long)
        return batch

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits  # (B, L)
        loss = F.cross_entropy(logits.float(), batch["labels"])
        return loss, {"accuracy": float((logits.argmax(-1) == batch["labels"]).float().mean())}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches) -> dict[str, float]:
        gold, pred, losses = [], [], []
        for batch in batches:
            logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
            losses.append(float(F.cross_entropy(logits.float(), batch["labels"])))
            gold += batch["labels"].tolist()
            pred += logits.argmax(-1).tolist()
        if not gold:
            raise ValueError("evaluation got no batches: the validation set is empty")
        prf = precision_recall_f1(gold, pred, "macro", labels=list(range(len(self.labels))))
        return {"loss": sum(losses) / len(losses), "accuracy": accuracy(gold, pred), "macro_f1": prf.f1}


def predict_classify(model, tokenizer, texts: list[str], pairs: list[str | None] | None = None,
                     max_len: int | None = None) -> list[dict]:
    """[{"label", "score", "scores": {label: probability}, "truncated"}] per input text (or pair)."""
    if model.config.head != "classify":
        raise ValueError(f"this model's head is {model.config.head!r}, not a sequence classifier")
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(pairs)} text pairs")
    examples = [TextExample(t, pairs[i] if pairs else None, None, f"input {i}") for i, t in enumerate(texts)]
    feats, _ = encode_classification(tokenizer, examples, None, model_max_len(model, max_len))
    names = model.config.label_names
    probs = torch.empty(len(feats), len(names))

    def keep(out, batch, idx):
        probs[idx] = out.logits.float().softmax(-1).cpu()

    run_bucketed(model.eval(), feats, tokenizer.pad_id or 0, keep)
    results = []
    for f, p in zip(feats, probs):
        k = int(p.argmax())
        results.append({"label": names[k], "score": round(float(p[k]), 6),
                        "scores": {n: round(float(v), 6) for n, v in zip(names, p)},
                        "truncated": f["truncated"]})
    return results
