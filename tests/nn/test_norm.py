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


def test_rmsnorm_in_inference_runs_the_native_kernel_with_the_same_values(monkeypatch):
    from lingvis.native import available
    from lingvis.native import row_norm as native
    if not available():
        pytest.skip("native kernels did not build")
    torch.manual_seed(0)
    norm = RMSNorm(37, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(2, 5, 37) * 4 - 1
    ref = norm(x).detach()  # autograd on: the torch formula
    calls = []
    real = native.row_norm
    monkeypatch.setattr(native, "row_norm", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    with torch.no_grad():
        y = norm(x)
    assert calls == [x.shape]
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6)


def test_add_then_norm_fuses_only_plain_norms_in_inference():
    from lingvis.native import available
    from lingvis.nn.norm import add_then_norm
    if not available():
        pytest.skip("native kernels did not build")
    torch.manual_seed(0)
    x, y = torch.randn(3, 4, 10), torch.randn(3, 4, 10)
    ln, rms = nn.LayerNorm(10), RMSNorm(10)
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
        rms.weight.normal_()
        for norm in (ln, rms):
            s, h = add_then_norm(x, y, norm)
            assert torch.equal(s, x + y)
            torch.testing.assert_close(h, norm.__class__.forward(norm, x + y) if norm is ln else
                                       (x + y) / torch.sqrt(((x + y) ** 2).mean(-1, keepdim=True) + rms.eps)
                                       * rms.weight, rtol=1e-5, atol=1e-5)
        assert add_then_norm(x, y[:, :1], rms) is None  # shapes differ (a widened branch): the caller adds
        assert add_then_norm(x, y.transpose(0, 1).contiguous().transpose(0, 1), rms) is None  # not contiguous
        assert add_then_norm(x, y, nn.LayerNorm((4, 10))) is None  # over two dimensions
        hook = rms.register_forward_hook(lambda *a: None)
        assert add_then_norm(x, y, rms) is None  # hooks must see the call
        hook.remove()
    assert add_then_norm(x, y, rms) is None  # autograd on, weight needs a gradient
