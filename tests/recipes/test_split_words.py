"""recipes.split_words: word pairs' embedding rows split around their mean (input and untied output tables), the
pair spec parsed, multi-token words refused; stage 2 (`LlavaArgs.split_words`) applies it before training."""
import string

import pytest
import torch

import lingvis
from lingvis.recipes.split_words import parse_pairs, split_word_pairs, word_id
from lingvis.tokenizers import train_char


@pytest.fixture
def tok():
    return train_char(string.printable)


def test_parse_pairs():
    assert parse_pairs("left/right, above/below") == [("left", "right"), ("above", "below")]
    assert parse_pairs(None) == [] and parse_pairs("") == []
    for bad in ("left", "left/right/up", "left/left", "left/"):
        with pytest.raises(ValueError, match="pairs of two different words"):
            parse_pairs(bad)


def test_word_id_takes_one_token_words_only(tok):
    assert word_id(tok, "a") == tok.encode("a")[0]  # " a" is two characters: the bare word is one
    with pytest.raises(ValueError, match="'left' is .* only one-token words"):
        word_id(tok, "left")


@pytest.mark.parametrize("tied", [True, False])
def test_split_keeps_the_mean_and_spreads_the_pair(tok, tied):
    torch.manual_seed(0)
    lm = lingvis.build("gpt-nano", vocab_size=tok.vocab_size, tie_embeddings=tied)
    ia, ib, ic = (word_id(tok, w) for w in "abc")
    with torch.no_grad():  # make a and b nearly equal, as text-only pretraining leaves " left" and " right"
        lm.wte.weight[ib] = lm.wte.weight[ia] + 0.001 * torch.randn_like(lm.wte.weight[ia])
    tables = [lm.wte.weight] + ([] if tied else [lm.lm_head.weight])
    before = [t.detach().clone() for t in tables]
    out = split_word_pairs(lm, tok, [("a", "b")], spread=0.65, seed=0)
    assert out[0]["ids"] == [ia, ib] and out[0]["cos_before"] > 0.99
    for t, b in zip(tables, before):  # (V, C) each
        mean = (b[ia] + b[ib]) / 2
        assert torch.allclose((t[ia] + t[ib]) / 2, mean, atol=1e-6)
        d = (t[ia] - t[ib]) / 2
        assert abs((d @ mean).item()) < 1e-4 * mean.norm().item() ** 2  # orthogonal to the mean
        assert torch.allclose(d.norm(), 0.65 * mean.norm(), rtol=1e-4)
        cos = torch.cosine_similarity(t[ia], t[ib], dim=0).item()
        assert abs(cos - (1 - 0.65 ** 2) / (1 + 0.65 ** 2)) < 1e-4  # 0.406
        assert torch.equal(t[ic], b[ic])  # every other row unchanged
    assert out[0]["cos_after"] == pytest.approx(0.406, abs=1e-3)
    if tied:
        assert lm.lm_head.weight.data_ptr() == lm.wte.weight.data_ptr()
    else:  # the head got its own split, around its own mean
        assert not torch.allclose(lm.lm_head.weight[ia], lm.wte.weight[ia])
