"""Speculative decoding: a cheap proposer guesses k tokens, the model checks all of them in one forward pass.

Proposers:
- `PromptLookup` (prompt-lookup decoding): find the most recent earlier occurrence of the sequence's last
  n-gram (n = max_ngram..1) and propose the tokens that followed it. Free, and strong when the output copies
  spans of its input (code edits, extraction, summaries that quote).
- `DraftModel`: a smaller causal LM with the same tokenizer proposes k tokens autoregressively from its own
  KV cache.

The prompt's forward pass gives the first new token, as in plain decoding. Then each round feeds [last token,
d1..dk] to the model with its KV cache (one pass over k + 1 positions) and keeps the longest prefix the model
agrees with, plus one token of the model's own: between 1 and k + 1 tokens per pass. For batch-1 fp32 / int8
GPT-family models that pass is the native whole decode step over k + 1 rows (`decode_step.FusedStep.rows`,
`native/step.c`'s `lv_step_rows_f32`: every weight read once for all rows), whose rows are bit for bit the
one-token steps of plain decoding; the draft model's own steps are `FusedStep` one-token steps.
- Greedy (temperature 0): a draft token is kept when it is the model's argmax at its position, so the output
  is plain greedy decoding's: exactly where the native step scores the rows (the same logits as plain
  decoding's one-token steps), else up to float rounding of the k + 1-row products (which can flip an exact tie).
- Sampling: speculative sampling (Leviathan et al. 2023; Chen et al. 2023). Draft token d with draft
  probability q(d) is kept with probability min(1, p(d) / q(d)), where p is the model's distribution after
  the repetition penalty, temperature, top-k and top-p of `SamplingConfig`; on rejection the token is drawn
  from max(0, p - q) renormalised; after k kept tokens one more is drawn from p. Every emitted token is then
  distributed exactly as under plain sampling. Prompt lookup proposes deterministically (q is one-hot).

KV cache rollback: rejected positions are dropped by moving the cache's `length` back (their columns are
overwritten by the next round). Sliding-window layers use a plain cache of prompt + new-token columns
masked to the window (`new_cache(ring=False)`), because a ring buffer would already have overwritten
columns that are still inside the window of the kept positions when a draft is rejected.

One prompt at a time (batch 1); `text_generation.generate` runs a list of prompts one by one.
"""
from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .decode_step import step_for
from .generate import SamplingConfig, check_context, pick, process_logits
from .nn.packed_linear import packed_linears

# the most tokens proposed per round (`next_draft_tokens` proposes fewer after a miss); measured on the benchmark's
# char-level pairs (docs/decoding.md, 2026-12-07 second and fourth sessions): prompt lookup k = 6..16 within the
# noise of each other; the draft k = 8 ahead of 4 and 6 (and level with 12) on both the cache-resident 4 x 256 target
# and the weight-bound 6 x 384 one
DEFAULT_DRAFT_TOKENS = {"prompt-lookup": 8, "draft": 8}


@dataclass
class Proposal:
    tokens: list[int]                 # k proposed ids
    probs: torch.Tensor | None = None  # (k, V) the distributions they were drawn from; None = deterministic


def _seen(ids: list[int], cfg: SamplingConfig, device) -> torch.Tensor | None:
    """(1, t) ids for the repetition penalty (None when it is off)."""
    return None if cfg.repetition_penalty == 1.0 else torch.tensor([ids], dtype=torch.long, device=device)


class PromptLookup:
    """Propose the continuation of the most recent earlier match of the last n-gram (n = max_ngram..min_ngram).
    When that continuation runs into the end of the text (a match P < k tokens back: it is the last P tokens) and
    the P tokens before those were the same (the text has gone round that cycle twice), the proposal goes on around
    the cycle up to k tokens (a loop such as "the the the" is proposed k tokens at a time, not P). The search is
    `bytes.rfind` over the ids as 4- or 8-byte words (C speed, no tensors: this runs once per verify pass)."""

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1):
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"need 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")
        self.max_ngram, self.min_ngram = max_ngram, min_ngram

    def propose(self, seq: list[int], k: int, cfg: SamplingConfig, gen) -> Proposal:
        L = len(seq)
        if k <= 0 or L < 2:
            return Proposal([])
        buf = array("q" if max(seq) >= 2 ** 31 else "i", seq).tobytes()
        w = len(buf) // L  # bytes per id
        for n in range(min(self.max_ngram, L - 1), self.min_ngram - 1, -1):
            j = _rfind_aligned(buf, buf[(L - n) * w:], (L - 1) * w, w)  # the latest start with j + n <= L - 1
            if j < 0:
                continue
            out = seq[j + n:j + n + k]
            P = L - n - j  # the match is P tokens back: `out` is then the last P tokens
            if len(out) < k and L >= 2 * P and seq[L - 2 * P:L - P] == out:  # and the P before them were the same
                out = [out[i % P] for i in range(k)]
            return Proposal(out)
        return Proposal([])

    def rollback(self, n_valid: int) -> None:
        pass


def _rfind_aligned(buf: bytes, pat: bytes, end: int, w: int) -> int:
    """The last start j (in ids of w bytes) with pat at buf[j w:] ending at or before byte `end`; -1 if none."""
    while True:
        i = buf.rfind(pat, 0, end)
        if i < 0 or i % w == 0:
            return i // w if i >= 0 else -1
        end = i + len(pat) - 1  # a match straddling ids: look further left


class DraftModel:
    """Proposals from a smaller causal LM (same tokenizer: same vocabulary size), with its own KV cache."""

    def __init__(self, draft: nn.Module, target: nn.Module):
        dv, tv = _vocab_size(draft), _vocab_size(target)
        if dv is not None and tv is not None and dv != tv:
            raise ValueError(f"the draft model's vocabulary ({dv}) differs from the model's ({tv}); a draft model "
                             "must share the tokenizer")
        self.model = draft.eval()
        self.cache, self.step = None, None
        self.fed = 0  # tokens of the sequence held by the draft cache

    def start(self, max_len: int) -> None:
        if max_len > self.model.context_length:
            raise ValueError(f"prompt + max_new_tokens = {max_len} exceeds the draft model's context length "
                             f"{self.model.context_length}")
        self.cache, self.fed = self.model.new_cache(1, max_len, ring=False), 0
        self.step = None  # decode_step's step over the cache, built once the prompt is in it (False: none)

    def _step(self, ids: list[int], device) -> torch.Tensor:
        """(V,) logits after feeding `ids` (the prompt first; then 1 token, or 2 after a fully kept round): the
        decode step of `decode_step` (the native whole step for batch 1 when it fits) once the cache holds the
        prompt, `model.forward` before that or for models without it."""
        if self.step is None and self.fed > 0:
            self.step = step_for(self.model, self.cache) or False
        if self.step and len(ids) == 1:
            return self._token(ids[0])
        x = torch.tensor(ids, dtype=torch.long, device=device)  # (n,)
        logits = None
        if self.step:
            logits = self.step(x) if len(ids) == 1 else self.step.rows(x)  # (n, V) or None
            logits = None if logits is None else logits[-1]  # (V,)
        if logits is None:
            logits = self.model(x[None], cache=self.cache, last_only=True)[0, -1]  # (V,)
        self.fed += len(ids)
        return logits.float()

    def _token(self, t: int) -> torch.Tensor:
        """(V,) logits after one proposed token, through the step's lean one-token path."""
        self.fed += 1
        return self.step.token(t).float()

    def propose(self, seq: list[int], k: int, cfg: SamplingConfig, gen) -> Proposal:
        if k <= 0:
            return Proposal([])
        device = next(self.model.parameters()).device
        logits = self._step(seq[self.fed:], device)  # catch up: 1 token, or 2 after a fully kept round
        if cfg.temperature == 0 and cfg.repetition_penalty == 1.0 and self.step:  # greedy: argmax, one-token steps
            tokens = [int(logits.argmax())]
            for _ in range(k - 1):
                tokens.append(int(self._token(tokens[-1]).argmax()))
            return Proposal(tokens)
        tokens, probs = [], []
        for i in range(k):
            scores = process_logits(logits[None], _seen(seq + tokens, cfg, device), cfg)  # (1, V)
            if cfg.temperature == 0:
                t = int(scores.argmax(-1))
            else:
                q = scores.softmax(-1)[0]  # (V,)
                t = int(torch.multinomial(q, 1, generator=gen))
                probs.append(q)
            tokens.append(t)
            if i < k - 1:
                logits = self._step([t], device)
        return Proposal(tokens, torch.stack(probs) if probs else None)

    def rollback(self, n_valid: int) -> None:
        """The first `n_valid` tokens of the sequence are final: drop cached columns past them."""
        if self.fed > n_valid:
            self.fed = n_valid
            self.cache.length = n_valid


def _vocab_size(model) -> int | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "vocab_size", None)


def make_proposer(speculative, model: nn.Module, max_ngram: int = 3):
    """A proposer from `speculative`: "prompt-lookup", or a draft causal LM (an nn.Module)."""
    if isinstance(speculative, str):
        if speculative != "prompt-lookup":
            raise ValueError(f"speculative must be 'prompt-lookup' or a draft model, got {speculative!r}")
        return PromptLookup(max_ngram=max_ngram)
    if isinstance(speculative, nn.Module):
        if speculative is model:
            raise ValueError("the draft model is the model itself; pass a smaller model")
        return DraftModel(speculative, model)
    raise TypeError(f"speculative must be 'prompt-lookup' or a draft model, got {type(speculative).__name__}")


def _verify(logits: torch.Tensor, seq: list[int], prop: Proposal, cfg: SamplingConfig, gen) -> tuple[list[int], int]:
    """(new tokens, number of draft tokens kept) from the model's (k + 1, V) logits at [last, d1..dk]."""
    new: list[int] = []
    k = len(prop.tokens)
    if cfg.temperature == 0 and cfg.repetition_penalty == 1.0:  # plain argmax: all positions at once
        picks = logits.argmax(-1).tolist()  # (k + 1,)
        kept = next((i for i in range(k) if picks[i] != prop.tokens[i]), k)
        return prop.tokens[:kept] + [picks[kept]], kept
    for i in range(k + 1):
        p_scores = process_logits(logits[i:i + 1], _seen(seq + new, cfg, logits.device), cfg)  # (1, V)
        if cfg.temperature == 0:
            t = int(p_scores.argmax(-1))
            new.append(t)
            if i == k or t != prop.tokens[i]:
                return new, i
            continue
        p = p_scores.softmax(-1)[0]  # (V,)
        if i == k:  # every draft token kept: one more from the model
            new.append(int(torch.multinomial(p, 1, generator=gen)))
            return new, k
        d = prop.tokens[i]
        q = prop.probs[i] if prop.probs is not None else None
        q_d = float(q[d]) if q is not None else 1.0
        u = float(torch.rand((), generator=gen, device=p.device))
        if u * q_d < float(p[d]):  # kept with probability min(1, p(d) / q(d))
            new.append(d)
            continue
        if q is not None:
            residual = (p - q).clamp_(min=0)
        else:  # a one-hot proposal: max(0, p - onehot(d)) is p without d
            residual = p.clone().index_fill_(0, torch.tensor([d], device=p.device), 0.0)
        total = float(residual.sum())
        new.append(int(torch.multinomial(residual / total if total > 0 else p, 1, generator=gen)))
        return new, i
    raise AssertionError("unreachable")


def next_draft_tokens(k_now: int, k_max: int, proposed: int, kept: int) -> int:
    """Tokens to propose next round: back up to `k_max` (doubling) while every proposal is kept, else one more
    than were kept. Acceptance comes in runs (a span being copied, a loop, a stretch the draft model gets right,
    then text it cannot guess): a rejected draft token costs a row of the verify pass, so after a miss the next
    rounds propose little, and a run of hits grows the proposal back."""
    if proposed and kept == proposed:
        return min(k_max, 2 * k_now)
    return max(1, min(k_max, kept + 1)) if proposed else k_now


def speculative_round(model: nn.Module, cache, seq: list[int], proposer, k: int, cfg: SamplingConfig,
                      gen, step=None) -> tuple[list[int], int, int, torch.Tensor]:
    """One round over `cache`, which holds every token of `seq` but the last (at columns 0..len(seq) - 2):
    propose up to k tokens, score [last, d1..dk] in one forward pass, keep the agreed prefix plus one token of
    the model's own, and drop the rejected columns (cache and proposer). `step`: a `decode_step.FusedStep` over
    `cache`, whose `rows` scores the k' + 1 positions in one native call where it can (each row's logits then
    those of a one-token step bit for bit); else `model.forward`. Returns (new tokens, number proposed, number
    kept, the (k' + 1, V) logits)."""
    prop = proposer.propose(seq, k, cfg, gen)
    x = torch.tensor([seq[-1], *prop.tokens], dtype=torch.long, device=next(model.parameters()).device)  # (k' + 1,)
    logits = step.rows(x) if step is not None else None  # (k' + 1, V)
    if logits is None:
        logits = model(x[None], cache=cache)[0]
    logits = logits.float()
    new, kept = _verify(logits, seq, prop, cfg, gen)
    cache.length = len(seq) + kept  # columns of `last` and the kept drafts
    proposer.rollback(len(seq) + len(new) - 1)
    return new, len(prop.tokens), kept, logits


@torch.inference_mode()
def stream_speculative(model: nn.Module, input_ids: torch.Tensor, cfg: SamplingConfig, speculative,
                       num_draft_tokens: int | None = None, max_ngram: int = 3,
                       stats: dict | None = None) -> Iterator[torch.Tensor]:
    """Yield (1,) next-token ids like `generate.stream_ids`, up to `num_draft_tokens` proposed per forward pass by
    `speculative` ("prompt-lookup" or a draft model; fewer after a round that rejected some, `next_draft_tokens`).
    Stops after an eos id or `max_new_tokens`. `stats`, when given, receives the number of forward passes
    (`steps`, the prompt's included), proposed and kept draft tokens."""
    cfg.validate()
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"speculative decoding takes one prompt (input_ids of shape (1, T)), got "
                         f"{tuple(input_ids.shape)}")
    T = input_ids.shape[1]
    check_context(T, cfg.max_new_tokens, model.context_length, "error")
    proposer = make_proposer(speculative, model, max_ngram)
    k = DEFAULT_DRAFT_TOKENS["draft" if isinstance(proposer, DraftModel) else "prompt-lookup"] \
        if num_draft_tokens is None else num_draft_tokens
    if k < 1:
        raise ValueError(f"num_draft_tokens must be >= 1, got {k}")
    max_len = T + cfg.max_new_tokens
    if isinstance(proposer, DraftModel):
        proposer.start(max_len)
    gen = torch.Generator(device=input_ids.device).manual_seed(cfg.seed) if cfg.seed is not None else None
    cache = model.new_cache(1, max_len, ring=False)
    seq = input_ids[0].tolist()
    eos = set(cfg.eos_ids)
    counts = stats if stats is not None else {}
    counts.update(steps=0, proposed=0, accepted=0)
    if cfg.max_new_tokens == 0:
        return
    with packed_linears(model):
        # the prompt's forward gives the first new token, as in plain decoding; the cache then holds every token
        # but the last, which opens each round
        logits = model(input_ids, cache=cache, last_only=True)[:, -1].float()  # (1, V)
        first = int(pick(process_logits(logits, _seen(seq, cfg, input_ids.device), cfg), cfg, gen))
        counts["steps"] += 1
        seq.append(first)
        yield torch.tensor([first], dtype=torch.long, device=input_ids.device)
        emitted = 1
        if first in eos:
            return
        step = step_for(model, cache)  # one-token and k + 1-token steps over the cache (None: model.forward)
        k_now = k
        while emitted < cfg.max_new_tokens:
            new, proposed, kept, _ = speculative_round(model, cache, seq, proposer,
                                                       min(k_now, cfg.max_new_tokens - emitted - 1), cfg, gen, step)
            k_now = next_draft_tokens(k_now, k, proposed, kept)
            counts["steps"] += 1
            counts["proposed"] += proposed
            counts["accepted"] += kept
            seq += new
            for t in new:
                yield torch.tensor([t], dtype=torch.long, device=input_ids.device)
                emitted += 1
                if t in eos or emitted >= cfg.max_new_tokens:
                    return


def generate_speculative_ids(model: nn.Module, input_ids: torch.Tensor, speculative,
                             num_draft_tokens: int | None = None, **kw) -> torch.Tensor:
    """(1, T) prompt ids -> (1, T + N) ids with speculative decoding. Keyword arguments are `SamplingConfig`
    fields."""
    out = [t[None] for t in stream_speculative(model, input_ids, SamplingConfig(**kw), speculative,
                                               num_draft_tokens)]
    return torch.cat([input_ids, *out], dim=1)
