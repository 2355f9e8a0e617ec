"""What the batching engine tracks per sequence, what it reports, and how it picks each row's next token
(with the library's own `process_logits` / `pick`, per row, so each request keeps its own sampling settings)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..generate import SamplingConfig, pick, process_logits

TopList = list[tuple[int, float]]


@dataclass
class SeqSpec:
    """One sequence to generate. `logprobs`: None for none, k >= 0 for the chosen token's log-probability
    plus the k most likely alternatives; `prompt_logprobs` scores the prompt tokens too (echo). `images`:
    (N, 3, H, W) pixels filling the prompt's image placeholder slots (image-chat models; the choices of one
    request share the tensor, and the engine computes its features once per prefill)."""
    prompt: list[int]
    cfg: SamplingConfig
    logprobs: int | None = None
    prompt_logprobs: bool = False
    images: torch.Tensor | None = None


@dataclass
class Event:
    """A report for sequence `index` of a submission: a token, the prompt scores, or the finish."""
    index: int
    token: int | None = None
    logprob: float | None = None
    top: TopList | None = None
    prompt_logprobs: list[tuple[float | None, TopList | None]] | None = None
    finish: str | None = None      # stop | length | cancelled | error
    error: str | None = None


@dataclass(eq=False)
class Seq:
    spec: SeqSpec
    index: int
    sink: Callable[[list[Event]], None]
    tokens: list[int] = field(default_factory=list)
    cancelled: bool = False
    done: bool = False
    gen: torch.Generator | None = None

    def __post_init__(self):
        if self.spec.cfg.seed is not None:
            self.gen = torch.Generator().manual_seed(self.spec.cfg.seed)

    @property
    def remaining(self) -> int:
        """Decode steps this row may still take once it is in the batch."""
        return self.spec.cfg.max_new_tokens - len(self.tokens)

    @property
    def plain_greedy(self) -> bool:
        cfg = self.spec.cfg
        return cfg.temperature == 0 and cfg.repetition_penalty == 1.0

    def seen(self, device) -> torch.Tensor:
        return torch.tensor([self.spec.prompt + self.tokens], dtype=torch.long, device=device)  # (1, t)


def top_list(logprobs: torch.Tensor, k: int) -> TopList:
    """The k most likely (id, logprob) of a (V,) log-probability row."""
    if k <= 0:
        return []
    vals, ids = torch.topk(logprobs, min(k, logprobs.shape[-1]))
    return list(zip(ids.tolist(), vals.tolist()))


def choose(seqs: list[Seq], logits: torch.Tensor) -> list[int]:
    """Next token of each row of (B, V) float logits, honouring each sequence's sampling settings."""
    out = [0] * len(seqs)
    greedy = [i for i, s in enumerate(seqs) if s.plain_greedy]
    if greedy:
        picked = pick(logits[greedy], seqs[greedy[0]].spec.cfg, None)  # (G,) argmax
        for i, t in zip(greedy, picked.tolist()):
            out[i] = t
    for i, s in enumerate(seqs):
        if s.plain_greedy:
            continue
        cfg = s.spec.cfg
        seen = s.seen(logits.device) if cfg.repetition_penalty != 1.0 else None
        out[i] = int(pick(process_logits(logits[i:i + 1], seen, cfg), cfg, s.gen)[0])
    return out


def prompt_scores(logprobs: torch.Tensor, prompt: list[int], k: int) -> list[tuple[float | None, TopList | None]]:
    """Per prompt token: its log-probability given the tokens before it (None for the first) and the top k.
    `logprobs` is (P, V) over the prompt positions (row t predicts token t + 1)."""
    out: list[tuple[float | None, TopList | None]] = [(None, None)]
    ids = torch.tensor(prompt[1:], dtype=torch.long, device=logprobs.device)
    chosen = logprobs[:-1].gather(1, ids[:, None])[:, 0].tolist() if len(prompt) > 1 else []  # (P - 1,)
    for t, lp in enumerate(chosen):
        out.append((lp, top_list(logprobs[t], k)))
    return out
