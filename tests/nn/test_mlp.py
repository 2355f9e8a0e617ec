import math
import sys

import pytest
import torch

from lingvis.nn import MLP, packed_linear
from lingvis.nn.mlp import GATED_INPLACE, INPLACE
from lingvis.nn.packed_linear import packed_available

EXPECTED = {  # activation -> formula written out independently of the implementation
    "gelu": lambda h: 0.5 * h * (1 + torch.erf(h / math.sqrt(2))),
    "gelu_tanh": lambda h: 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3))),
    "quick_gelu": lambda h: h / (1 + torch.exp(-1.702 * h)),
    "relu": lambda h: h.clamp(min=0),
    "relu2": lambda h: h.clamp(min=0) ** 2,
    "silu": lambda h: h / (1 + torch.exp(-h)),
}
GATED = {
    "swiglu": lambda g, u: g / (1 + torch.exp(-g)) * u,
    "geglu": lambda g, u: 0.5 * g * (1 + torch.erf(g / math.sqrt(2))) * u,
}


@pytest.mark.parametrize("act", sorted(EXPECTED))
def test_plain_activations(act):
    torch.manual_seed(0)
    mlp = MLP(8, 16, act)
    x = torch.randn(2, 3, 8)
    assert mlp.fc.weight.shape == (16, 8)
    want = mlp.proj(EXPECTED[act](mlp.fc(x)))
    assert torch.allclose(mlp(x), want, atol=1e-5)


@pytest.mark.parametrize("act", sorted(GATED))
def test_gated_activations_double_fc_width(act):
    torch.manual_seed(0)
    mlp = MLP(8, 16, act, bias=False)
    assert mlp.fc.weight.shape == (32, 8) and mlp.fc.bias is None
    x = torch.randn(2, 3, 8)
    gate, up = mlp.fc(x).chunk(2, dim=-1)
    assert torch.allclose(mlp(x), mlp.proj(GATED[act](gate, up)), atol=1e-5)


def test_unknown_activation_lists_choices():
    with pytest.raises(ValueError, match="unknown activation 'tanh'.*swiglu"):
        MLP(8, 16, "tanh")


@pytest.mark.parametrize("act", sorted([*INPLACE, *GATED_INPLACE]))
def test_inplace_activation_without_grad_matches_and_training_keeps_autograd(act):
    torch.manual_seed(0)
    m = MLP(8, 24, act)
    x = torch.randn(2, 5, 8)
    y = m(x)  # training path: out of place, gradients flow
    with torch.no_grad():
        z = m(x)
    with torch.inference_mode():
        w = m(x)
    assert torch.equal(z, w)
    if act in ("swiglu", "quick_gelu") and packed_available():  # inference: fused oneDNN products: rounding
        torch.testing.assert_close(y.detach(), z, rtol=1e-5, atol=1e-6)
    else:
        assert torch.equal(y.detach(), z)
    y.square().sum().backward()
    assert m.fc.weight.grad is not None and m.fc.weight.grad.abs().sum() > 0


@pytest.mark.skipif(not packed_available(), reason="oneDNN's packed linear is not in this torch build")
@pytest.mark.parametrize("shape, hidden, bias", [((2, 5, 8), 24, True), ((1, 3, 7), 13, False), ((4, 9), 6, True)])
def test_swiglu_in_inference_runs_the_gate_with_the_silu_fused(shape, hidden, bias, monkeypatch):
    torch.manual_seed(0)
    m = MLP(shape[-1], hidden, "swiglu", bias=bias)
    x = torch.randn(*shape)
    ref = m(x).detach()  # autograd on: fc, then silu(gate) * up
    calls = []
    real = packed_linear.linear
    monkeypatch.setattr(sys.modules["lingvis.nn.mlp"], "linear",
                        lambda *a, **k: calls.append(k.get("epilogue", "none")) or real(*a, **k))
    with torch.no_grad():
        y = m(x)
        one = m(x.reshape(-1, shape[-1])[:1])  # one row keeps the single product (the GEMV, a separate SiLU)
    assert calls == ["silu", "none"] and y.shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(one, ref.reshape(-1, shape[-1])[:1], rtol=1e-5, atol=1e-6)
    monkeypatch.setenv("LINGVIS_PACKED_LINEAR", "0")  # the path switched off: fc's one product, as in training
    with torch.no_grad():
        assert torch.equal(m(x), ref)


@pytest.mark.skipif(not packed_available(), reason="oneDNN's packed linear is not in this torch build")
@pytest.mark.parametrize("shape, hidden, bias", [((2, 5, 8), 24, True), ((1, 3, 7), 13, False), ((4, 9), 6, True)])
def test_quick_gelu_in_inference_folds_into_the_two_products(shape, hidden, bias, monkeypatch):
    torch.manual_seed(0)
    m = MLP(shape[-1], hidden, "quick_gelu", bias=bias)
    x = torch.randn(*shape)
    ref = m(x).detach()  # autograd on: fc, x * sigmoid(1.702 x), proj
    calls = []
    real = packed_linear.linear
    monkeypatch.setattr(sys.modules["lingvis.nn.mlp"], "linear",
                        lambda *a, **k: calls.append((k.get("epilogue", "none"), k.get("scale"))) or real(*a, **k))
    with torch.no_grad():
        y = m(x)
        again = m(x)  # the scaled packed copies are reused
    assert calls == [("silu", 1.702), ("none", 1 / 1.702)] * 2
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6)
    assert torch.equal(y, again)
    with torch.no_grad():
        m.fc.weight.mul_(2)  # a changed weight is packed again (its version moved)
        torch.testing.assert_close(m(x), m.proj(EXPECTED["quick_gelu"](m.fc(x))), rtol=1e-5, atol=1e-6)
    monkeypatch.setenv("LINGVIS_PACKED_LINEAR", "0")  # switched off: the three-pass activation, as before
    with torch.no_grad():
        assert torch.equal(m(x), m.proj(INPLACE["quick_gelu"](m.fc(x))))
