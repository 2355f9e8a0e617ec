"""Decoding for every causal decoder: greedy, temperature, top-k, top-p, repetition penalty, stop strings,
KV cache, streaming and batched prompts of different lengths (left padding, not computed for
row-independent models; finished rows leave the batch)."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from .decode_step import compiled_cache_len, step_for
from .nn.packed_linear import packed_linears


@dataclass
class SamplingConfig:
    max_new_tokens: int = 64
    temperature: float = 0.0          # 0 = greedy
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    eos_ids: list[int] = field(default_factory=list)
    seed: int | None = None
    overflow: str = "error"           # prompt + new tokens over the context: "error", or "slide" the window
    compile: bool = False             # decode steps through a torch.compile'd static-cache step (decode_step.py)


    def validate(self) -> None:
        if self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.overflow not in ("error", "slide"):
            raise ValueError(f"overflow must be 'error' or 'slide', got {self.overflow!r}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")


def process_logits(logits: torch.Tensor, seen: torch.Tensor | None, cfg: SamplingConfig) -> torch.Tensor:
    """Apply repetition penalty, temperature, top-k and top-p to (B, V) logits."""
    if cfg.repetition_penalty != 1.0 and seen is not None:
        score = logits.gather(1, seen)  # (B, t)
        score = torch.where(score > 0, score / cfg.repetition_penalty, score * cfg.repetition_penalty)
        logits = logits.scatter(1, seen, score)
    if cfg.temperature == 0:
        return logits
    logits = logits / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < logits.shape[-1]:
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p is not None and cfg.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) >= cfg.top_p  # keep the smallest prefix reaching top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


def pick(logits: torch.Tensor, cfg: SamplingConfig, gen: torch.Generator | None) -> torch.Tensor:
    """(B, V) processed logits -> (B,) next token ids."""
    if cfg.temperature == 0:
        return logits.max(-1).indices  # argmax (the first maximum as well), a vectorised reduction: 3x faster on CPU
    probs = logits.float().softmax(-1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(1)


def pad_left(seqs: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists to (B, T) ids and a (B, T) 1/0 mask."""
    if not seqs or any(len(s) == 0 for s in seqs):
        raise ValueError("every prompt must have at least one token")
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, T - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
        mask[i, T - len(s):] = 1
    return ids, mask


def check_context(prompt_len: int, max_new_tokens: int, context: int, overflow: str = "error") -> None:
    if prompt_len >= context:
        raise ValueError(f"prompt of {prompt_len} tokens leaves no room in the model's context length {context}")
    if overflow == "error" and prompt_len + max_new_tokens > context:
        raise ValueError(f"prompt of {prompt_len} tokens + max_new_tokens {max_new_tokens} = "
                         f"{prompt_len + max_new_tokens} exceeds the model's context length {context}")


def _seen(seq: torch.Tensor, mask: torch.Tensor | None, cfg: SamplingConfig) -> torch.Tensor | None:
    """Token ids the repetition penalty applies to: (B, t), left padding replaced by a real token of the
    same row (a duplicate changes nothing), so a padded prompt is penalised exactly like the prompt alone."""
    if cfg.repetition_penalty == 1.0:
        return None
    return seq if mask is None else torch.where(mask.bool(), seq, seq[:, -1:])


def left_padded_lengths(mask: torch.Tensor) -> torch.Tensor | None:
    """(B,) real lengths when the (B, T) mask is left padding (zeros, then ones, in every row), else None."""
    lengths = mask.sum(-1)  # (B,)
    T = mask.shape[1]
    expect = torch.arange(T, device=mask.device)[None] >= (T - lengths)[:, None]  # (B, T)
    return lengths if bool((mask.bool() == expect).all()) else None


def prefill_unpadded(model, input_ids: torch.Tensor, lengths: torch.Tensor, cache,
                     inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """Prefill left-padded prompts without computing the padding: the rows of each real length L run
    together on their last L ids (or embeddings), and their keys/values land in `cache` at positions
    T-L..T, where the padded prefill would have put them. Returns the (B, V) logits at each prompt's last
    token."""
    B, T = input_ids.shape
    out = None
    for L in sorted(set(lengths.tolist())):
        rows = (lengths == L).nonzero().squeeze(1)  # (G,)
        part = model.new_cache(len(rows), L)
        if inputs_embeds is None:
            logits = model(input_ids[rows, T - L:], cache=part, last_only=True)[:, -1]  # (G, V)
        else:
            logits = model(inputs_embeds=inputs_embeds[rows, T - L:], cache=part, last_only=True)[:, -1]
        cache.write_rows(part, rows, T - L, B)
        if out is None:
            out = logits.new_empty(B, logits.shape[-1])
        out[rows] = logits
    cache.advance(T - cache.length)
    return out


def _worth_compacting(done: torch.Tensor) -> bool:
    """Drop finished rows once they are an eighth of the batch (or the batch is small): each later step
    then computes only live rows, at the price of one copy of the cache."""
    n = int(done.sum())
    return n > 0 and n * 8 >= len(done)


@dataclass
class _Live:
    """The rows still being decoded: original row index, ids so far, padding mask and positions."""
    rows: torch.Tensor                # (B',) index into the caller's batch
    seq: torch.Tensor                 # (B', T + t) prompt + generated ids
    mask: torch.Tensor | None         # (B', T + t) 1 = real token; None when no row is padded
    pos: torch.Tensor | None          # (B', T + t) positions of the padded rows
    done: torch.Tensor                # (B',) reached eos (or `finished`)
    step_pos: torch.Tensor | None = None

    def append(self, nxt: torch.Tensor, cached: bool) -> None:
        """Extend every row by its (B',) next id."""
        self.seq = torch.cat([self.seq, nxt[:, None]], dim=1)
        if self.mask is not None:
            self.mask = torch.cat([self.mask, self.mask.new_ones(len(nxt), 1)], dim=1)
            self.step_pos = self.pos[:, -1:] + 1 if cached else (self.mask.cumsum(-1) - 1).clamp(min=0)
            self.pos = torch.cat([self.pos, self.pos[:, -1:] + 1], dim=1)

    def keep(self, keep: torch.Tensor, cache) -> None:
        """Keep only rows `keep` (B'',), cache rows included."""
        self.rows, self.seq, self.done = self.rows[keep], self.seq[keep], self.done[keep]
        if self.mask is not None:
            self.mask, self.pos, self.step_pos = self.mask[keep], self.pos[keep], self.step_pos[keep]
        if cache is not None:
            cache.reorder(keep)


def _will_slide(input_ids: torch.Tensor, cfg: SamplingConfig, context: int, mask: torch.Tensor | None,
                inputs_embeds: torch.Tensor | None, use_cache: bool) -> bool:
    """Whether generation must slide past the context window; raises for inputs that cannot."""
    slide = input_ids.shape[1] + cfg.max_new_tokens > context
    if slide and mask is not None:
        raise ValueError("sliding-window generation past the context needs prompts of equal length")
    if slide and inputs_embeds is not None:
        raise ValueError("generation from inputs_embeds cannot slide past the context (the prompt cannot be "
                         "re-embedded); lower max_new_tokens")
    if inputs_embeds is not None and (inputs_embeds.shape[:2] != input_ids.shape or not use_cache):
        raise ValueError(f"inputs_embeds {tuple(inputs_embeds.shape)} must match input_ids "
                         f"{tuple(input_ids.shape)} in (B, T), and needs the KV cache")
    return slide


def _prefill(model, input_ids: torch.Tensor, live: _Live, cache, lengths: torch.Tensor | None,
             inputs_embeds: torch.Tensor | None) -> torch.Tensor:
    """(B, V) last-position logits of the prompt: unpadded per length group when `lengths` is given."""
    if lengths is not None:
        return prefill_unpadded(model, input_ids, lengths, cache, inputs_embeds)
    if inputs_embeds is not None:
        return model(inputs_embeds=inputs_embeds, attention_mask=live.mask, position_ids=live.step_pos,
                     cache=cache, last_only=True)[:, -1]
    return model(input_ids, attention_mask=live.mask, position_ids=live.step_pos, cache=cache,
                 last_only=True)[:, -1]


class _OneTokenStep:
    """One-token steps of unpadded rows: the fused step of `decode_step.py` (compiled with `compile`), built
    for the cache it runs on and rebuilt when the cache is replaced; `model.forward` for models without it.
    A model whose one-token steps are those of an inner LM (`step_model`, e.g. LLaVA's decoder once the
    image features sit in the cache) has the fused step built on that LM."""

    def __init__(self, model, compile: bool):
        self.model, self.compile = model, compile
        self.lm = getattr(model, "step_model", model)
        self.cache, self.step = None, None

    def __call__(self, ids: torch.Tensor, cache) -> torch.Tensor:  # (B',) -> (B', V)
        if self.cache is not cache:
            self.step, self.cache = step_for(self.lm, cache, self.compile), cache
        if self.step is not None:
            return self.step(ids)
        return self.model(ids[:, None], cache=cache, last_only=True)[:, -1]


def _slide(model, step_in: torch.Tensor, cache, live: _Live, context: int):
    """Past the context: a fresh cache re-reading the last 3/4 of the context (with a cache), or the last
    `context` tokens (without). Returns (step_in, cache), unchanged while the context holds."""
    if cache is not None and cache.length + step_in.shape[1] > context:
        return live.seq[:, -(3 * context // 4):], model.new_cache(len(live.rows), context)
    if cache is None and step_in.shape[1] > context:
        return live.seq[:, -context:], cache
    return step_in, cache


@torch.inference_mode()
def stream_ids(model, input_ids: torch.Tensor, cfg: SamplingConfig, attention_mask: torch.Tensor | None = None,
               use_cache: bool = True,
               finished: Callable[[torch.Tensor], torch.Tensor] | None = None,
               inputs_embeds: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """Yield (B,) next-token ids step by step; finished rows keep yielding their eos id (0 without one).
    `finished`, called with each step's (B,) ids, may end rows early (a (B,) bool; e.g. stop strings).
    `inputs_embeds` (B, T, C) replaces the prompt's token embeddings in the prefill (image or video features
    among text tokens); `input_ids` then only serves the repetition penalty and may hold placeholder ids.

    No compute goes to padding or finished rows for models whose rows are independent (`row_independent`,
    e.g. GPT): left-padded prompts are prefilled unpadded, grouped by length, and rows that reached eos
    leave the batch (their cache rows too). Other decoders (e.g. a seq2seq decoder view) run padded."""
    cfg.validate()
    B, T = input_ids.shape
    context = model.context_length
    check_context(T, cfg.max_new_tokens, context, cfg.overflow)
    gen = torch.Generator(device=input_ids.device).manual_seed(cfg.seed) if cfg.seed is not None else None
    mask = attention_mask if attention_mask is not None and not bool(attention_mask.all()) else None
    pos = None if mask is None else (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
    slide = _will_slide(input_ids, cfg, context, mask, inputs_embeds, use_cache)
    cache_len = min(context, T + cfg.max_new_tokens)
    if cfg.compile:  # one compiled graph per cache length: round it up so prompt lengths share it
        cache_len = compiled_cache_len(cache_len, context)
    cache = model.new_cache(B, cache_len) if use_cache else None
    independent = bool(getattr(model, "row_independent", False))
    lengths = left_padded_lengths(mask) if independent and mask is not None and cache is not None \
        and cache.holds_unwrapped(T) else None
    eos = torch.tensor(cfg.eos_ids or [-1], device=input_ids.device)
    fill = eos[0].clamp(min=0)
    live = _Live(torch.arange(B, device=input_ids.device), input_ids, mask, pos,
                 torch.zeros(B, dtype=torch.bool, device=input_ids.device), pos)
    step_in = input_ids
    one_token = _OneTokenStep(model, cfg.compile)
    with packed_linears(model):  # oneDNN packed weights for the small-batch steps (nn/packed_linear.py)
        for step in range(cfg.max_new_tokens):
            if slide:
                step_in, cache = _slide(model, step_in, cache, live, context)
            if step == 0:
                logits = _prefill(model, step_in, live, cache, lengths, inputs_embeds)  # (B, V)
            elif live.mask is None and cache is not None and step_in.shape[1] == 1:
                logits = one_token(step_in[:, 0], cache)  # (B', V)
            else:
                logits = model(step_in, attention_mask=live.mask, position_ids=live.step_pos, cache=cache,
                               last_only=True)[:, -1]  # (B', V)
            nxt = pick(process_logits(logits.float(), _seen(live.seq, live.mask, cfg), cfg), cfg, gen)  # (B',)
            nxt = torch.where(live.done, fill.expand_as(nxt), nxt)
            live.done = live.done | torch.isin(nxt, eos)
            full = nxt if len(live.rows) == B else \
                torch.full((B,), int(fill), dtype=nxt.dtype, device=nxt.device).index_copy_(0, live.rows, nxt)
            yield full
            if finished is not None:
                live.done = live.done | finished(full)[live.rows].to(live.done.device)
            if bool(live.done.all()):
                return
            live.append(nxt, cache is not None)
            if independent and _worth_compacting(live.done):
                keep = (~live.done).nonzero().squeeze(1)  # (B'',)
                live.keep(keep, cache)
                nxt = nxt[keep]
            step_in = nxt[:, None] if cache is not None else live.seq


def generate_ids(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 use_cache: bool = True, inputs_embeds: torch.Tensor | None = None, **kw) -> torch.Tensor:
    """(B, T) prompt ids -> (B, T + N) ids. Keyword arguments are `SamplingConfig` fields."""
    cfg = SamplingConfig(**kw)
    out = [t[:, None] for t in stream_ids(model, input_ids, cfg, attention_mask, use_cache,
                                          inputs_embeds=inputs_embeds)]
    return torch.cat([input_ids, *out], dim=1)
