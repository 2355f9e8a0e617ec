import math

import pytest
import torch

from lingvis.eval.perplexity import (
    NLLAccumulator,
    bits_per_byte,
    bits_per_token,
    mean_nll,
    perplexity,
    perplexity_from_mean_nll,
)


def test_uniform_model_perplexity_equals_vocab_size():
    vocab, tokens = 50, 37
    logits = torch.zeros(tokens, vocab)  # (T, V) uniform
    targets = torch.randint(0, vocab, (tokens,), generator=torch.Generator().manual_seed(0))
    nll = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    assert perplexity(nll, tokens) == pytest.approx(vocab, rel=1e-5)
    assert bits_per_token(nll, tokens) == pytest.approx(math.log2(vocab), rel=1e-5)


def test_helpers():
    assert mean_nll(6.0, 3) == 2.0
    assert perplexity(6.0, 3) == pytest.approx(math.exp(2.0))
    assert perplexity_from_mean_nll(torch.tensor(2.0)) == pytest.approx(math.exp(2.0))
    assert bits_per_byte(8 * math.log(2), 4) == pytest.approx(2.0)
    assert perplexity(1e6, 1) == math.inf


def test_accumulator_matches_pooled_mean():
    acc = NLLAccumulator()
    batches = [(12.0, 4), (torch.tensor(3.0), torch.tensor(2)), (0.5, 1)]
    for s, n in batches:
        acc.add(s, n)
    assert acc.num_tokens == 7 and acc.mean_nll == pytest.approx(15.5 / 7)
    assert acc.perplexity == pytest.approx(math.exp(15.5 / 7))  # not the mean of batch perplexities


def test_errors():
    with pytest.raises(ValueError, match="num_tokens must be positive"):
        perplexity(1.0, 0)
    with pytest.raises(ValueError, match="nll_sum: expected a scalar"):
        perplexity(torch.ones(2), 2)
    with pytest.raises(ValueError, match="nll_sum is NaN"):
        perplexity(float("nan"), 2)
    with pytest.raises(ValueError, match="non-negative integer"):
        NLLAccumulator().add(1.0, 2.5)
    with pytest.raises(ValueError, match="num_tokens must be positive"):
        NLLAccumulator().perplexity
