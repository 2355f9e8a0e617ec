"""Dynamic int8 linears and the fast image encoder: close to fp32, original model untouched."""
import copy

import pytest
import torch
import torch.nn.functional as F

import lingvis
from lingvis.models.fast_encode import HAS_INT_MM, FastImageEncoder, Int8DynamicLinear, quantize_rows, swap_int8_linears

pytestmark = pytest.mark.skipif(not HAS_INT_MM, reason="torch._int_mm unavailable")


def test_int8_linear_is_close_to_fp32():
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 24)
    q = Int8DynamicLinear(lin)
    x = torch.randn(2, 5, 64)
    want, got = lin(x), q(x)
    assert got.shape == (2, 5, 24) and q.weight_int8.dtype == torch.int8
    assert (got - want).abs().max() / want.abs().max() < 0.02
    assert F.cosine_similarity(got.flatten(), want.flatten(), dim=0) > 0.9995


def test_quantize_rows_round_trip():
    x = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]])
    q, s = quantize_rows(x)
    assert q[0].tolist() == [64, -127, 32] and torch.allclose(q * s, x, atol=0.01)


@pytest.mark.parametrize("name", ["clip-nano", "vit-nano", "cnn-nano"])
def test_fast_encoder_matches_fp32_embeddings(name):
    torch.manual_seed(0)
    model = lingvis.build(name).eval()
    fast = FastImageEncoder(model, int8=True)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        want = model.encode_image(x) if hasattr(model, "encode_image") else model(x)
    got = fast(x)
    assert F.cosine_similarity(got, want).min() > 0.995  # per-tensor 7-bit activations on a tiny random model
    assert not any(type(m) is torch.nn.Linear for m in fast.model.modules())  # every linear is int8
    assert any(type(m) is torch.nn.Linear for m in model.modules())  # the original keeps fp32
    swapped = swap_int8_linears(copy.deepcopy(model))  # the torch._int_mm fallback
    with torch.no_grad():
        got = swapped.encode_image(x) if hasattr(swapped, "encode_image") else swapped(x)
    assert F.cosine_similarity(got, want).min() > 0.999


@pytest.mark.parametrize("name", ["clip-nano", "cnn-nano"])
def test_bf16_encoder_is_close_and_leaves_the_model_fp32(name):
    torch.manual_seed(0)
    model = lingvis.build(name).eval()
    fast = FastImageEncoder(model, precision="bf16")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        want = model.encode_image(x) if hasattr(model, "encode_image") else model(x)
    got = fast(x)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert F.cosine_similarity(got, want).min() > 0.999
    assert all(p.dtype == torch.bfloat16 for p in fast.model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert FastImageEncoder(model, int8=False).precision == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        FastImageEncoder(model, precision="fp8")
