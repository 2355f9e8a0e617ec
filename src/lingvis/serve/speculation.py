"""Speculative decoding in the serving engine: a row decoding alone verifies k proposed tokens per forward.

Continuous batching already fills each forward pass with many rows; speculation pays when a row is alone
(one user, a long answer). So the engine runs a speculative round (`speculative.py`: prompt lookup or a draft
model proposes, one (1, k + 1) forward over the batch cache verifies) whenever exactly one row is active and
nothing waits, and a plain batched step otherwise; a row moves between the two at any step. Greedy rows give
plain greedy's tokens; sampled rows keep their distribution (speculative sampling with the row's generator).
Rows asking for log-probabilities or carrying images, and models with sliding-window (ring) caches, always
take plain steps.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..speculative import DEFAULT_DRAFT_TOKENS, DraftModel, make_proposer


@dataclass
class Speculation:
    """`proposer`: "prompt-lookup" or a draft causal LM; `draft_tokens`: k proposed per round (None: the
    library default for the proposer)."""
    proposer: str | nn.Module
    draft_tokens: int | None = None

    def __post_init__(self):
        if self.draft_tokens is not None and self.draft_tokens < 1:
            raise ValueError(f"draft_tokens must be >= 1, got {self.draft_tokens}")

    @property
    def k(self) -> int:
        if self.draft_tokens is not None:
            return self.draft_tokens
        return DEFAULT_DRAFT_TOKENS["prompt-lookup" if isinstance(self.proposer, str) else "draft"]

    def check(self, model: nn.Module) -> None:
        """Fail at start-up, not at the first request, for a proposer that cannot serve `model`."""
        make_proposer(self.proposer, model)

    def new(self, model: nn.Module, max_len: int):
        """A fresh proposer for one sequence of at most `max_len` tokens (a draft model gets its own cache)."""
        proposer = make_proposer(self.proposer, model)
        if isinstance(proposer, DraftModel):
            proposer.start(max_len)
        return proposer
