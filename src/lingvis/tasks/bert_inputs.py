"""BERT input building shared by the fine-tuning tasks: [CLS] A [SEP] (B [SEP]) with segment ids,
longest-first truncation, padding, and length-bucketed batched inference."""
from __future__ import annotations

from collections.abc import Callable

import torch

from ..embeddings import BucketCost, plan_buckets


def special_ids(tokenizer) -> tuple[int, int]:
    cls, sep = tokenizer.cls_id, tokenizer.sep_id
    if cls is None or sep is None:
        raise ValueError(f"BERT tasks need a tokenizer with [CLS] and [SEP] (roles: {tokenizer.special_tokens})")
    return cls, sep


def pack(cls: int, sep: int, a: list[int], b: list[int] | None, max_len: int) -> tuple[list[int], list[int], bool]:
    """(ids, token_type_ids, truncated). Truncation is longest-first: tokens are removed from the end of
    the longer of A and B until [CLS] A [SEP] B [SEP] fits `max_len`."""
    a, b = list(a), list(b) if b is not None else None
    budget = max_len - (3 if b is not None else 2)
    if budget < 2:
        raise ValueError(f"max_len {max_len} is too small for [CLS] A [SEP] B [SEP]")
    truncated = False
    while len(a) + (len(b) if b is not None else 0) > budget:
        truncated = True
        if b is not None and len(b) > len(a):
            b.pop()
        else:
            a.pop()
    ids = [cls, *a, sep] + ([*b, sep] if b is not None else [])
    types = [0] * (len(a) + 2) + ([1] * (len(b) + 1) if b is not None else [])
    return ids, types, truncated


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    T = max(len(r) for r in rows)
    out = torch.full((len(rows), T), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def collate_inputs(features: list[dict], pad_id: int) -> dict:
    """input_ids / token_type_ids / attention_mask (B, T) from features holding `ids` and `types`."""
    return {"input_ids": pad([f["ids"] for f in features], pad_id),
            "token_type_ids": pad([f["types"] for f in features], 0),
            "attention_mask": pad([[1] * len(f["ids"]) for f in features], 0)}


def model_max_len(model, requested: int | None) -> int:
    limit = model.config.max_positions
    if requested is not None and requested > limit:
        raise ValueError(f"max_len {requested} exceeds the model's max_positions {limit}")
    return requested or limit


@torch.inference_mode()
def run_bucketed(model, features: list[dict], pad_id: int, fn: Callable[[object, dict, list[int]], None],
                 max_batch: int = 32) -> None:
    """Run `model` over `features` in length-sorted buckets; `fn(output, batch, indices)` consumes each."""
    device = next(model.parameters()).device
    cost = BucketCost(max_batch=max_batch, pack=False)  # task heads need one row per input
    for bucket in plan_buckets([len(f["ids"]) for f in features], cost, model.config.n_embd):
        idx = bucket.indices
        batch = collate_inputs([features[i] for i in idx], pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        fn(model(**batch), batch, idx)

