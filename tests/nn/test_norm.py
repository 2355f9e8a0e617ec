import pytest
import torch
from torch import nn

from lingvis.nn import RMSNorm, make_norm


def test_rmsnorm_formula_and_scale():
    torch.manual_seed(0)
    norm = RMSNorm(6, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 7.0))
    x = torch.randn(3, 4, 6) * 5 + 2
    want = x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + 1e-6) * torch.arange(1.0, 7.0)
    assert torch.allclose(norm(x), want, atol=1e-5)
    # unlike LayerNorm it does not remove the mean
    assert not torch.allclose(norm(x).mean(-1), torch.zeros(3, 4), atol=1e-3)


def test_rmsnorm_keeps_half_precision_dtype():
    x = torch.randn(2, 6).to(torch.bfloat16)
    assert RMSNorm(6).to(torch.bfloat16)(x).dtype == torch.bfloat16


def test_make_norm():
    ln = make_norm("layernorm", 8, 1e-5, bias=False)
    assert isinstance(ln, nn.LayerNorm) and ln.bias is None
    assert isinstance(make_norm("rmsnorm", 8), RMSNorm)
    with pytest.raises(ValueError, match="unknown norm 'batchnorm'"):
        make_norm("batchnorm", 8)
