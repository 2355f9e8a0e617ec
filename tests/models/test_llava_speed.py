"""LLaVA's fast paths: decode steps through the LM's fused one-token step (decode_step.py) once the image
features sit in the KV cache, equal to the general path (tokens identical, logits within 1e-5)."""
import importlib

import pytest
import torch

import lingvis
from lingvis.decode_step import FusedStep

gen = importlib.import_module("lingvis.generate")


def model(name):
    torch.manual_seed(0)
    return lingvis.build(name).eval()


def prompt(m, batch=1, T=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(4, m.llm.config.vocab_size, (batch, T), generator=g)
    img = torch.full((batch, m.tokens_per_image), m.config.image_token_id)
    return torch.cat([text[:, :3], img, text[:, 3:]], dim=1)  # (B, 3 + P + T - 3)


def pixels(m, n, seed=2):
    s = m.vision.config.image_size
    return torch.randn(n, 3, s, s, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["llava-nano", "llava-llama-nano"])
@pytest.mark.parametrize("batch", [1, 3])
def test_decode_steps_take_the_fused_step_with_the_same_tokens(name, batch, monkeypatch):
    m = model(name)
    ids, px = prompt(m, batch), pixels(m, batch)
    built = []
    step_for = gen.step_for

    def spy(lm, cache, compile=False):
        built.append(step := step_for(lm, cache, compile))
        return step

    monkeypatch.setattr(gen, "step_for", spy)
    fused = m.generate(ids, 12, pixel_values=px)
    assert len(built) == 1 and isinstance(built[0], FusedStep) and built[0].model is m.llm
    monkeypatch.setenv("LINGVIS_FUSED_STEP", "0")
    plain = m.generate(ids, 12, pixel_values=px)
    assert built[-1] is None  # switched off: every step ran Llava.forward
    assert torch.equal(fused, plain)


@pytest.mark.parametrize("name", ["llava-nano", "llava-llama-nano"])
def test_fused_step_logits_match_the_model_after_an_image_prefill(name):
    m = model(name)
    ids, px = prompt(m, 2), pixels(m, 2)
    nxt = torch.tensor([5, 7])
    with torch.inference_mode():
        a, b = m.new_cache(2, ids.shape[1] + 2), m.new_cache(2, ids.shape[1] + 2)
        m(ids, pixel_values=px, cache=a)
        m(ids, pixel_values=px, cache=b)
        want = m(nxt[:, None], cache=a)[:, -1]  # (B, V) the general path
        got = FusedStep(m.step_model, b)(nxt)
    assert a.length == b.length == ids.shape[1] + 1
    assert (got - want).abs().max() <= 1e-5


@pytest.mark.parametrize("name", ["llava-nano", "llava-llama-nano", "llava-shapes"])
def test_last_position_prefill_matches_the_full_forward(name, monkeypatch):
    """The prefill that runs the LM's last block only on the last position: the same last logits (1e-5) and
    the same cache as the full forward; generation gives the same tokens, left-padded batches included."""
    from lingvis.models import llava_prefill

    m = model(name)
    ids, px = prompt(m, 2), pixels(m, 2)
    calls = []
    real = llava_prefill.prefill_last
    monkeypatch.setattr("lingvis.models.llava.prefill_last", lambda *a: calls.append(1) or real(*a))
    with torch.inference_mode():
        fast, full = m.new_cache(2, ids.shape[1] + 4), m.new_cache(2, ids.shape[1] + 4)
        got = m(ids, pixel_values=px, cache=fast, last_only=True)  # (B, 1, V)
        assert calls == [1]
        want = m(ids, pixel_values=px)[:, -1:]  # no cache: the full forward
        m(ids, pixel_values=px, cache=full)
        text = m(ids[:, :3], cache=m.new_cache(2, 8), last_only=True)  # a text-only prefill takes it too
        assert len(calls) == 2
        assert torch.allclose(text, m(ids[:, :3])[:, -1:], atol=1e-5, rtol=0)
    assert got.shape == want.shape and (got - want).abs().max() <= 1e-5
    assert fast.length == full.length == ids.shape[1]
    for a, b in zip(fast.k + fast.v, full.k + full.v):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)
    mask = torch.ones_like(ids)
    mask[1, :2] = 0  # row 1 left-padded: prefilled unpadded, by length groups
    out = m.generate(ids, 10, pixel_values=px, attention_mask=mask)
    monkeypatch.setenv("LINGVIS_LAST_PREFILL", "0")
    assert torch.equal(out, m.generate(ids, 10, pixel_values=px, attention_mask=mask))
    n = len(calls)
    m.generate(ids, 3, pixel_values=px)
    assert len(calls) == n  # switched off


def test_last_position_prefill_is_skipped_when_it_does_not_apply():
    from lingvis.models.llava_prefill import applies

    m = model("llava-nano")
    c = m.new_cache(1, 8)
    with torch.no_grad():
        assert applies(m.llm, c, None, None)
        assert not applies(m.llm, c, torch.ones(1, 4), None)  # a padding mask
        assert not applies(m.llm, c, None, torch.arange(4)[None])  # custom positions
        assert not applies(m.llm, None, None, None)
        assert not applies(m.llm.train(), c, None, None)  # training mode (dropout) keeps the full forward
        m.llm.eval()
        c.advance(2)
        assert not applies(m.llm, c, None, None)  # not a prefill
    assert not applies(m.llm, m.new_cache(1, 8), None, None)  # gradients on: the full forward


def test_greedy_pick_is_argmax_with_ties_and_nan():
    from lingvis.generate import SamplingConfig, pick

    x = torch.randn(8, 1000, generator=torch.Generator().manual_seed(0))
    x[:, 5] = x[:, 900] = x.max() + 1  # a tie: the first index, as argmax
    x[3, 17] = float("nan")  # NaN wins, as in argmax
    assert torch.equal(pick(x, SamplingConfig(), None), x.argmax(-1))
    assert pick(x, SamplingConfig(), None)[3] == 17 and pick(x, SamplingConfig(), None)[0] == 5
