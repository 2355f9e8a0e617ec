"""Perplexity helpers from summed negative log-likelihood (natural log) and token counts."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def _scalar(x: Any, name: str) -> float:
    if hasattr(x, "numel"):  # torch tensor
        if x.numel() != 1:
            raise ValueError(f"{name}: expected a scalar, got shape {tuple(x.shape)}")
        x = x.item()
    v = float(x)
    if math.isnan(v):
        raise ValueError(f"{name} is NaN")
    return v


def _check_count(n: float, name: str) -> None:
    if n <= 0:
        raise ValueError(f"{name} must be positive, got {n}")


def mean_nll(nll_sum: Any, num_tokens: Any) -> float:
    """Average negative log-likelihood per token (nats)."""
    s, n = _scalar(nll_sum, "nll_sum"), _scalar(num_tokens, "num_tokens")
    _check_count(n, "num_tokens")
    return s / n


def perplexity(nll_sum: Any, num_tokens: Any) -> float:
    """exp(nll_sum / num_tokens); inf when the mean NLL overflows exp."""
    m = mean_nll(nll_sum, num_tokens)
    return math.exp(m) if m < 709.0 else math.inf  # exp overflows float64 just above 709.78


def perplexity_from_mean_nll(mean_loss: Any) -> float:
    """exp(mean cross-entropy in nats), e.g. from a model's reported loss."""
    return perplexity(mean_loss, 1)


def bits_per_token(nll_sum: Any, num_tokens: Any) -> float:
    """Mean NLL in bits per token."""
    return mean_nll(nll_sum, num_tokens) / math.log(2)


def bits_per_byte(nll_sum: Any, num_bytes: Any) -> float:
    """Total NLL in bits divided by the UTF-8 byte count of the text (tokenizer-independent)."""
    s, n = _scalar(nll_sum, "nll_sum"), _scalar(num_bytes, "num_bytes")
    _check_count(n, "num_bytes")
    return s / n / math.log(2)


@dataclass
class NLLAccumulator:
    """Running sum of NLL and tokens over batches: `acc.add(loss_sum, n)`, then `acc.perplexity`."""

    nll_sum: float = 0.0
    num_tokens: int = 0

    def add(self, nll_sum: Any, num_tokens: Any) -> None:
        """Add one batch's summed NLL and its number of scored tokens."""
        n = _scalar(num_tokens, "num_tokens")
        if n < 0 or n != int(n):
            raise ValueError(f"num_tokens must be a non-negative integer, got {n}")
        self.nll_sum += _scalar(nll_sum, "nll_sum")
        self.num_tokens += int(n)

    @property
    def mean_nll(self) -> float:
        """Mean NLL per token so far."""
        return mean_nll(self.nll_sum, self.num_tokens)

    @property
    def perplexity(self) -> float:
        """Perplexity so far."""
        return perplexity(self.nll_sum, self.num_tokens)
