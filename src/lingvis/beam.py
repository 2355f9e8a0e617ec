"""Beam search for every lingvis decoder: causal LMs and encoder-decoders (through a `DecoderView`).

The model protocol is generate.py's: `model(input_ids, attention_mask=, position_ids=, cache=, last_only=)`,
`new_cache(batch, max_len)` and `context_length`; a model carrying per-row state (an encoder memory) also
exposes `expand_beams(k)`. The prompt is run once per sentence (not once per beam); the search keeps a KV
cache for self-attention (reordered with `cache.reorder` as beams are re-ranked) and computes the encoder
keys/values for cross-attention once.

Scoring follows transformers' vectorised beam search (`generate(num_beams=K)`), so both give the same
tokens on the same weights: length penalty `score / generated_len ** length_penalty`, `early_stopping`
True / False / "never", n-best output, `min_new_tokens`, `forced_eos_id` at the last step, suppressed ids.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from .generate import SamplingConfig, check_context, stream_ids
from .nn import KVCache
from .nn.packed_linear import packed_linears

NEG = -1.0e9  # the "impossible" score transformers uses (finite, so sums stay ordered)


@dataclass
class BeamConfig:
    num_beams: int = 4
    max_new_tokens: int = 64
    length_penalty: float = 1.0          # > 0 favours longer hypotheses, < 0 shorter ones
    early_stopping: bool | str = False   # True: stop once num_beams hypotheses finished; "never": exact search
    num_return_sequences: int = 1        # n-best
    eos_ids: list[int] = field(default_factory=list)
    pad_id: int = 0                      # fills finished hypotheses up to the output length
    min_new_tokens: int = 0
    forced_eos_id: int | None = None     # the only allowed token at the last step (Marian's default)
    suppress_ids: list[int] = field(default_factory=list)

    def validate(self) -> None:
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be >= 1, got {self.num_beams}")
        if not 1 <= self.num_return_sequences <= self.num_beams:
            raise ValueError(f"num_return_sequences must be in [1, num_beams={self.num_beams}], "
                             f"got {self.num_return_sequences}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1 for beam search, got {self.max_new_tokens}")
        if self.early_stopping not in (True, False, "never"):
            raise ValueError(f"early_stopping must be True, False or 'never', got {self.early_stopping!r}")


@dataclass
class BeamOutput:
    sequences: torch.Tensor  # (B, R, T + N): prompt + hypothesis, best first, right-padded with pad_id
    scores: torch.Tensor     # (B, R) length-penalised sum of token log-probabilities
    lengths: torch.Tensor    # (B, R) generated tokens per hypothesis (eos included)


def process_log_probs(logp: torch.Tensor, new_tokens: int, last_step: bool, cfg: BeamConfig) -> torch.Tensor:
    """Apply min_new_tokens, suppressed ids and the forced final eos to (N, V) log-probabilities."""
    if cfg.min_new_tokens and new_tokens < cfg.min_new_tokens and cfg.eos_ids:
        logp[:, cfg.eos_ids] = float("-inf")
    if cfg.suppress_ids:
        logp[:, cfg.suppress_ids] = float("-inf")
    if last_step and cfg.forced_eos_id is not None:
        logp.fill_(float("-inf"))
        logp[:, cfg.forced_eos_id] = 0.0
    return logp


def _gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t (B, K, ...) rows picked by idx (B, K') along dim 1."""
    while idx.dim() < t.dim():
        idx = idx.unsqueeze(-1)
    return torch.take_along_dim(t, idx, dim=1)


class BeamState:
    """Running and finished hypotheses of B sentences x K beams, updated one token at a time."""

    def __init__(self, prompt: torch.Tensor, cfg: BeamConfig, max_len: int):
        B, T = prompt.shape
        K, dev = cfg.num_beams, prompt.device
        self.cfg, self.B, self.K, self.T, self.max_len = cfg, B, K, T, max_len
        self.running = torch.full((B, K, max_len), cfg.pad_id, dtype=torch.long, device=dev)
        self.running[:, :, :T] = prompt[:, None]
        self.finished = self.running.clone()
        self.run_scores = torch.zeros(B, K, device=dev)
        self.run_scores[:, 1:] = NEG  # only the first beam may expand at step one
        self.fin_scores = torch.full((B, K), NEG, device=dev)
        self.fin_lengths = torch.zeros(B, K, dtype=torch.long, device=dev)
        self.is_finished = torch.zeros(B, K, dtype=torch.bool, device=dev)
        self.improvable = torch.ones(B, 1, dtype=torch.bool, device=dev)
        self.keep = max(2, 1 + len(cfg.eos_ids)) * K  # candidates per sentence: enough to keep K alive
        self.top_k_mask = torch.arange(self.keep, device=dev) < K
        self.eos = torch.tensor(cfg.eos_ids or [-1], device=dev)
        self.offset = torch.arange(B, device=dev)[:, None] * K

    def advance(self, logp: torch.Tensor, cur: int) -> tuple[torch.Tensor, bool]:
        """Extend by one token from (B*K, V) log-probs written at position `cur`; return the flat
        (B*K,) source rows of the surviving beams (for cache.reorder) and whether the search is over."""
        B, K = self.B, self.K
        V = logp.shape[-1]
        W = self.keep
        # the W best of the K*V candidates (beam score + token log-prob) are among each beam's W best tokens:
        # a top-k per beam row (parallel, and the beam score added to W values instead of V), then one over
        # the K*W survivors, instead of a top-k over K*V sums
        row_lp, row_tok = torch.topk(logp.view(B, K, V), W, dim=-1)  # (B, K, W)
        row_lp = row_lp + self.run_scores[:, :, None]  # the same sums the full candidate table would hold
        top_lp, pick = torch.topk(row_lp.view(B, K * W), W, dim=-1)  # (B, W)
        beam, tok = pick // W, row_tok.view(B, K * W).gather(1, pick)
        top_seqs = _gather(self.running, beam)  # (B, W, L)
        top_seqs[:, :, cur] = tok
        hits = torch.isin(tok, self.eos) | (cur + 1 >= self.max_len)  # (B, W)
        alive_lp = top_lp + hits.float() * NEG
        nxt = torch.topk(alive_lp, K, dim=-1).indices  # (B, K)
        self.running, self.run_scores = _gather(top_seqs, nxt), _gather(alive_lp, nxt)
        rows = (_gather(beam, nxt) + self.offset).view(-1)
        self._update_finished(top_seqs, top_lp, hits, cur)
        return rows, self._search_over(cur + 1, hits)

    def _update_finished(self, top_seqs, top_lp, hits, cur: int) -> None:
        cfg, gen_len = self.cfg, cur + 1 - self.T
        just = hits & self.top_k_mask[None, :]
        score = top_lp / (gen_len ** cfg.length_penalty)
        full = self.is_finished.all(-1, keepdim=True) & (cfg.early_stopping is True)
        score = score + full.float() * NEG + (~self.improvable).float() * NEG + (~just).float() * NEG
        scores = torch.cat([self.fin_scores, score], dim=1)
        best = torch.topk(scores, self.K, dim=-1).indices  # (B, K)
        self.fin_scores = _gather(scores, best)
        self.finished = _gather(torch.cat([self.finished, top_seqs], dim=1), best)
        lengths = torch.cat([self.fin_lengths, torch.full_like(top_lp, gen_len, dtype=torch.long)], dim=1)
        self.fin_lengths = _gather(lengths, best)
        self.is_finished = _gather(torch.cat([self.is_finished, just], dim=1), best)

    def _search_over(self, cur_len: int, hits: torch.Tensor) -> bool:
        cfg = self.cfg
        if cfg.early_stopping == "never" and cfg.length_penalty > 0.0:
            best_len = self.max_len - self.T
        else:
            best_len = cur_len - self.T
        best_running = self.run_scores[:, :1] / (best_len ** cfg.length_penalty)
        worst_done = torch.where(self.is_finished, self.fin_scores.min(dim=1, keepdim=True).values,
                                 torch.full_like(self.fin_scores, NEG))
        self.improvable = self.improvable & (best_running > worst_done).any(dim=-1, keepdim=True)
        all_done = bool(self.is_finished.all()) and cfg.early_stopping is True
        return not bool(self.improvable.any()) or all_done or bool(hits.all())

    def output(self) -> BeamOutput:
        R = self.cfg.num_return_sequences
        lengths = self.fin_lengths[:, :R]
        L = self.T + int(lengths.max())
        return BeamOutput(self.finished[:, :R, :L], self.fin_scores[:, :R], lengths)


def prefill(model, input_ids: torch.Tensor, mask: torch.Tensor | None, pos: torch.Tensor | None, k: int,
            max_len: int, inputs_embeds: torch.Tensor | None = None) -> tuple[torch.Tensor, KVCache]:
    """Run each (B, T) prompt once (its k beams all start from it), then copy its cache rows to every beam.
    Returns the last position's (B*k, V) logits and a (B*k)-row cache holding T positions."""
    B = input_ids.shape[0]
    cache = model.new_cache(B, max_len)
    prompt = {} if inputs_embeds is None else {"inputs_embeds": inputs_embeds}
    logits = model(None if inputs_embeds is not None else input_ids, attention_mask=mask, position_ids=pos,
                   cache=cache, last_only=True, **prompt)[:, -1]  # (B, V)
    cache.reorder(torch.arange(B, device=input_ids.device).repeat_interleave(k), cross=True)
    return logits.repeat_interleave(k, 0), cache


@torch.inference_mode()
def beam_search(model, input_ids: torch.Tensor, cfg: BeamConfig,
                attention_mask: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None) -> BeamOutput:
    """Beam search from (B, T) prompts (left-padded with `attention_mask` for causal LMs; the decoder start
    token for a `DecoderView`). `inputs_embeds` (B, T, C) replaces the prompt's token embeddings in the
    prefill. Returns the `num_return_sequences` best hypotheses per prompt."""
    cfg.validate()
    B, T = input_ids.shape
    N = cfg.max_new_tokens
    check_context(T, N, model.context_length)
    mask = attention_mask if attention_mask is not None and not bool(attention_mask.all()) else None
    pos = None if mask is None else (mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
    with packed_linears(model):  # oneDNN packed weights for the small-batch steps (nn/packed_linear.py)
        return _search(model, input_ids, cfg, mask, pos, inputs_embeds)


def _search(model, input_ids: torch.Tensor, cfg: BeamConfig, mask: torch.Tensor | None,
            pos: torch.Tensor | None, inputs_embeds: torch.Tensor | None = None) -> BeamOutput:
    B, T = input_ids.shape
    K, N = cfg.num_beams, cfg.max_new_tokens
    logits, cache = prefill(model, input_ids, mask, pos, K, T + N, inputs_embeds)
    step_model = model.expand_beams(K) if hasattr(model, "expand_beams") else model
    if mask is not None:
        mask, pos = mask.repeat_interleave(K, 0), pos.repeat_interleave(K, 0)  # (B*K, T)
    state = BeamState(input_ids, cfg, T + N)
    identity = torch.arange(B * K, device=input_ids.device)
    step_pos = None
    for cur in range(T, T + N):
        if cur > T:
            logits = step_model(step_in, attention_mask=mask, position_ids=step_pos, cache=cache,
                                last_only=True)[:, -1]
        logp = torch.log_softmax(logits.float(), dim=-1)  # (B*K, V)
        logp = process_log_probs(logp, cur - T, cur == T + N - 1, cfg)
        rows, over = state.advance(logp, cur)
        if over:
            break
        if not torch.equal(rows, identity):
            cache.reorder(rows, cross=False)  # every beam of a sentence shares its encoder keys/values
        step_in = state.running[:, :, cur].reshape(B * K, 1)
        if mask is not None:
            mask = torch.cat([mask, mask.new_ones(B * K, 1)], dim=1)
            step_pos = pos[:, -1:] + (cur - T + 1)
    return state.output()


def generate_tokens(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                    default_eos: int | None = None, default_pad: int = 0, num_beams: int = 1,
                    inputs_embeds: torch.Tensor | None = None, **kw) -> torch.Tensor:
    """(B, T) prompt ids -> (B * R, T + N) ids by beam search (`num_beams` > 1, `BeamConfig` keywords) or by
    greedy/sampled decoding (`SamplingConfig` keywords). Rows end at eos; shorter rows are padded."""
    if "eos_ids" not in kw and default_eos is not None:
        kw["eos_ids"] = [default_eos]
    cls = BeamConfig if num_beams > 1 else SamplingConfig
    unknown = sorted(set(kw) - {f.name for f in fields(cls)})
    if unknown:
        mode = "beam search (num_beams > 1)" if num_beams > 1 else "greedy/sampled decoding (num_beams=1)"
        raise ValueError(f"option(s) {unknown} do not apply to {mode}")
    if num_beams > 1:
        kw.setdefault("pad_id", default_pad)
        out = beam_search(model, input_ids, BeamConfig(num_beams=num_beams, **kw), attention_mask, inputs_embeds)
        return out.sequences.flatten(0, 1)
    steps = [t[:, None] for t in stream_ids(model, input_ids, SamplingConfig(**kw), attention_mask,
                                            inputs_embeds=inputs_embeds)]
    return torch.cat([input_ids, *steps], dim=1)
