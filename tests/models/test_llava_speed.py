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
