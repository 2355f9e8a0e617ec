"""Sentence embeddings and semantic search with BERT-family encoders.

`embed(model, tokenizer, texts)` uses the checkpoint's own pooling (`config.pooling`, set from a
sentence-transformers folder's `1_Pooling/config.json`; mean pooling when the checkpoint names none),
its `Normalize` module (`config.normalize`) and its `max_seq_length` (`config.embed_max_length`):
longer texts keep their first max_seq_length - 2 tokens between [CLS] and [SEP], as sentence-transformers
does. Encoding sorts texts by length and groups them into buckets of similar length or packs several
short texts into one row, so padding costs almost nothing (`plan_buckets`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .nn.packed_linear import packed_linears


@dataclass
class BucketCost:
    """Relative costs (in units of one token through the linear layers) used to group sequences."""

    call_overhead: float = 16.0               # a forward call costs about this many tokens of work
    attention_per_pair: float | None = None   # one query-key pair; default 1 / (6 * width)
    max_batch: int = 64
    max_tokens: int = 16384                   # padded tokens per batch
    pack: bool = True                         # allow packing sequences into one row (block-diagonal attention)
    max_pack_tokens: int = 1024


@dataclass
class Bucket:
    indices: list[int]   # into the input list, shortest first
    packed: bool         # True: one concatenated row; False: a padded batch


def plan_buckets(lengths: list[int], cost: BucketCost | None = None, width: int = 768) -> list[Bucket]:
    """Group sequences so that padding costs (almost) nothing: sort by length, then an exact dynamic
    programme over contiguous runs; each run is either a padded batch (cost ~ n * longest) or, when
    cheaper, one packed row (cost ~ total tokens, plus block-diagonal attention over the whole row)."""
    c = cost or BucketCost()
    a = c.attention_per_pair if c.attention_per_pair is not None else 1.0 / (6 * width)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    ls = [lengths[i] for i in order]
    n = len(ls)
    best = [0.0] + [float("inf")] * n   # best[j]: cost of the first j sorted sequences
    choice: list[tuple[int, bool]] = [(0, False)] * (n + 1)
    for j in range(1, n + 1):
        longest, total = ls[j - 1], 0
        for i in range(j - 1, max(-1, j - 1 - c.max_batch), -1):  # run = sorted[i:j]
            size, total = j - i, total + ls[i]
            if size > 1 and size * longest > c.max_tokens:
                break
            padded = c.call_overhead + size * longest * (1 + a * longest)
            options = [(padded, False)]
            if c.pack and size > 1 and total <= c.max_pack_tokens:
                options.append((c.call_overhead + total * (1 + a * total), True))
            run, packed = min(options)
            if best[i] + run < best[j]:
                best[j], choice[j] = best[i] + run, (i, packed)
    buckets, j = [], n
    while j > 0:
        i, packed = choice[j]
        buckets.append(Bucket(order[i:j], packed))
        j = i
    return buckets[::-1]


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, T, C) hidden states + (B, T) 1/0 mask -> (B, C), as sentence-transformers' Pooling."""
    m = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    if mode == "cls":
        return hidden[:, 0]
    if mode == "max":
        return hidden.masked_fill(m == 0, -1e9).max(dim=1).values
    total = (hidden * m).sum(dim=1)  # (B, C)
    count = m.sum(dim=1).clamp(min=1e-9)  # (B, 1)
    if mode == "mean":
        return total / count
    if mode == "mean_sqrt_len":
        return total / count.sqrt()
    raise ValueError(f"unknown pooling {mode!r}; choose cls, mean, max or mean_sqrt_len")


def pad_batch(seqs: list[list[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists -> (ids (B, T), mask (B, T))."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, :len(s)] = 1
    return ids, mask


def _pool_packed(hidden: torch.Tensor, lengths: list[int], mode: str) -> torch.Tensor:
    """(N, C) packed hidden states -> (n, C) pooled, one row per sequence."""
    return torch.cat([pool(h[None], torch.ones(1, len(h), device=h.device), mode) for h in hidden.split(lengths)])


@torch.inference_mode()
def encode_sequences(model: nn.Module, seqs: list[list[int]], pooling: str | None = None,
                     normalize: bool | None = None, cost: BucketCost | None = None) -> torch.Tensor:
    """Pooled vectors (N, C) for token-id sequences (specials included), in input order."""
    if not seqs:
        raise ValueError("no sequences to encode")
    cfg = model.config
    mode = pooling or cfg.pooling
    device = next(model.parameters()).device
    out = torch.empty(len(seqs), cfg.n_embd)
    with packed_linears(model):  # each linear on the kernel measured faster for its shape (nn/gemm_select.py)
        for bucket in plan_buckets([len(s) for s in seqs], cost, cfg.n_embd):
            group = [seqs[i] for i in bucket.indices]
            if bucket.packed:
                ids = torch.tensor([t for s in group for t in s], device=device)
                lengths = [len(s) for s in group]
                vecs = _pool_packed(model.encode_packed(ids, lengths), lengths, mode)
            else:
                ids, mask = pad_batch(group, cfg.pad_id)
                vecs = pool(model.encode(ids.to(device), mask.to(device)), mask.to(device), mode)
            out[bucket.indices] = vecs.float().cpu()
    if cfg.normalize if normalize is None else normalize:
        out = F.normalize(out, p=2, dim=1)
    return out


def text_ids(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """[CLS] text [SEP] ids, truncated to `max_length` tokens in all."""
    cls, sep = tokenizer.cls_id, tokenizer.sep_id
    if cls is None or sep is None:
        raise ValueError(f"the tokenizer has no [CLS]/[SEP] tokens (roles: {tokenizer.special_tokens})")
    if max_length < 3:
        raise ValueError(f"max_length must be >= 3, got {max_length}")
    return [[cls, *ids[:max_length - 2], sep] for ids in tokenizer.encode_batch(list(texts))]


def _resolve(model, tokenizer):
    if isinstance(model, (str, Path)):
        from .api import load, load_tokenizer

        return load(model), tokenizer if tokenizer is not None else load_tokenizer(model)
    if tokenizer is None:
        raise ValueError("pass a tokenizer, or a checkpoint folder as `model`")
    return model, tokenizer


def embed(model, tokenizer, texts: str | list[str], pooling: str | None = None, normalize: bool | None = None,
          max_length: int | None = None) -> torch.Tensor:
    """(N, H) sentence embeddings. `model` is a BERT-family model or a checkpoint folder (then `tokenizer`
    may be None). pooling / normalize / max_length default to the checkpoint's own settings."""
    model, tokenizer = _resolve(model, tokenizer)
    if getattr(model, "family", None) != "bert":
        raise ValueError(f"embed needs a BERT-family encoder, got {type(model).__name__}")
    texts = [texts] if isinstance(texts, str) else list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
    cfg = model.config
    limit = min(max_length or cfg.embed_max_length or cfg.max_positions, cfg.max_positions)
    return encode_sequences(model.eval(), text_ids(tokenizer, texts, limit), pooling, normalize)


def search(model, tokenizer, corpus: list[str], queries: str | list[str], top_k: int = 5,
           corpus_embeddings: torch.Tensor | None = None, **embed_kw) -> list[list[dict]]:
    """For each query, the `top_k` corpus entries by cosine similarity: [{"rank", "score", "index", "text"}].
    `embed_kw` (pooling, max_length) go to `embed`; pass `corpus_embeddings` to reuse an encoded corpus."""
    model, tokenizer = _resolve(model, tokenizer)
    if not corpus:
        raise ValueError("the search corpus is empty")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    queries = [queries] if isinstance(queries, str) else list(queries)
    docs = corpus_embeddings if corpus_embeddings is not None else embed(model, tokenizer, corpus, **embed_kw)
    if len(docs) != len(corpus):
        raise ValueError(f"corpus_embeddings has {len(docs)} rows for {len(corpus)} corpus entries")
    q = embed(model, tokenizer, queries, **embed_kw)
    scores = F.normalize(q, dim=1) @ F.normalize(docs, dim=1).T  # (Q, N)
    k = min(top_k, len(corpus))
    top = scores.topk(k, dim=1)
    return [[{"rank": r + 1, "score": round(float(s), 6), "index": int(i), "text": corpus[int(i)]}
             for r, (s, i) in enumerate(zip(vals, idx))] for vals, idx in zip(top.values, top.indices)]
