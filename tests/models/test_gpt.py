"""GPT family: presets, parameter counts, forward contract, cache == full pass for every position kind."""
import pytest
import torch

import lingvis
from lingvis.models import registry
from lingvis.models.gpt import GPT, GPTConfig


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())  # shared (tied) tensors counted once


def test_gpt2_preset_has_exactly_124_439_808_parameters():
    with torch.device("meta"):
        model = lingvis.build("gpt2")
    assert n_params(model) == 124_439_808
    assert model.lm_head.weight is model.wte.weight


def test_untied_embeddings_add_the_head():
    with torch.device("meta"):
        model = lingvis.build("gpt2", tie_embeddings=False)
    assert n_params(model) == 124_439_808 + 50257 * 768


def test_presets_listed_and_unknown_names_rejected():
    names = lingvis.list_presets("gpt")
    assert {"gpt2", "gpt-mini", "gpt-micro", "gpt-nano", "llama-micro"} <= set(names)
    with pytest.raises(KeyError, match="unknown preset 'gpt9'"):
        registry.preset_config("gpt9")
    with pytest.raises(ValueError, match=r"unknown gpt config field\(s\) \['n_layers'\]"):
        lingvis.build("gpt-nano", n_layers=3)
    with pytest.raises(ValueError, match="unknown position 'alibi'"):
        GPT(GPTConfig(n_layer=1, n_embd=32, n_head=4, vocab_size=11, position="alibi"))


def test_forward_shapes_and_last_only():
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=50).eval()
    assert model.family == "gpt" and model.context_length == 64
    x = torch.randint(0, 50, (3, 10))
    logits = model(x)
    assert logits.shape == (3, 10, 50)
    assert torch.allclose(model(x, last_only=True)[:, 0], logits[:, -1], atol=1e-5)
    with pytest.raises(ValueError, match="sequence of 65 tokens exceeds the context length 64"):
        model(torch.zeros(1, 65, dtype=torch.long))


@pytest.mark.parametrize("overrides", [
    {},
    {"position": "rotary", "norm": "rmsnorm", "activation": "swiglu", "bias": False, "tie_embeddings": False},
    {"position": "sinusoidal", "activation": "relu2"},
], ids=["gpt2-style", "llama-style", "sinusoidal"])
def test_cached_decoding_equals_full_forward(overrides):
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=40, **overrides).eval()
    x = torch.randint(0, 40, (2, 12))
    with torch.no_grad():
        full = model(x)
        cache = model.new_cache(2, 16)
        parts = [model(x[:, :7], cache=cache)]
        parts += [model(x[:, t:t + 1], cache=cache) for t in range(7, 12)]
    assert cache.length == 12
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_left_padding_with_positions_equals_unpadded():
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=40).eval()
    x = torch.randint(1, 40, (1, 6))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), x], 1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]])
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        a = model(x)
        b = model(padded, attention_mask=mask, position_ids=pos)[:, 3:]
    assert torch.allclose(a, b, atol=1e-5)


def test_weights_are_trainable_and_gradients_flow_everywhere():
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=30, dropout=0.1)
    x = torch.randint(0, 30, (2, 8))
    model(x).logsumexp(-1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
