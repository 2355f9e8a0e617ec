"""Native matrix-vector kernels (lingvis/native/kernels.py) against torch on odd shapes: fp32 as `F.linear`,
W8A8 as fbgemm's dynamic linear (and an exact integer reference), weight-only int8 as the dequantised product."""
import pytest
import torch
import torch.nn.functional as F

from lingvis import native
from lingvis.quant import NATIVE_MAX_ROWS, QuantLinear, fbgemm_available

pytestmark = pytest.mark.skipif(not native.available(), reason="native kernels did not build (no C compiler?)")
SHAPES = [(1, 1), (7, 5), (33, 77), (13, 130), (65, 17), (8, 64), (5, 1000)]  # (N, K): tails of every width


def _rel(a, b):
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("N,K", SHAPES)
def test_f32_equals_f_linear(N, K, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(N * K)
    w, b = torch.randn(N, K), torch.randn(N)
    for bias in (b, None):
        k = native.LinearF32(w, bias)
        for shape in ((K,), (1, K), (1, 1, K), (3, K), (2, 2, K)):
            x = torch.randn(shape)
            assert k.accepts(x)
            y = k(x)
            assert y.shape == (*shape[:-1], N) and y.dtype == torch.float32
            torch.testing.assert_close(y, F.linear(x, w, bias), rtol=1e-5, atol=1e-5 * K ** 0.5)


def _fbgemm_reference(x: torch.Tensor, q: QuantLinear) -> torch.Tensor:
    """fbgemm's grid for one row (torch's ChooseQuantizationParams onto 0..255), exact integer product."""
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = (hi - lo) / 255 or 0.1
    zmin, zmax = -lo / scale, 255 - hi / scale
    zp = int(min(max(round(zmin if abs(lo / scale) < abs(hi / scale) + 255 - 255 else zmin
                           if (0 - abs(lo / scale)) < (255 - abs(hi / scale)) else zmax), 0), 255))
    s32 = torch.tensor(scale, dtype=torch.float32)
    xq = (torch.round(x * (1 / s32)) + zp).clamp(0, 255).long()  # (K,)
    acc = (q.weight_int8.long() * xq).sum(1) - zp * q.weight_int8.long().sum(1)  # (N,) exact
    return acc.double() * (float(s32) * q.scales.double()) + q.bias.double()


@pytest.mark.skipif(not fbgemm_available(), reason="W8A8 needs fbgemm")
@pytest.mark.parametrize("N,K", SHAPES)
def test_w8a8_equals_fbgemm(N, K):
    torch.manual_seed(N + K)
    q = QuantLinear.from_linear(torch.nn.Linear(K, N), activations="int8")
    k = q.native_kernel()
    assert isinstance(k, native.LinearInt8)
    for x in (torch.randn(K), torch.randn(K) * 5 + 3, -torch.rand(K) - 0.1, torch.zeros(K)):
        got = k(x[None])[0]
        torch.testing.assert_close(got, q._forward_w8a8(x[None])[0], rtol=1e-5, atol=1e-5)  # fbgemm itself
        torch.testing.assert_close(got.double(), _fbgemm_reference(x, q), rtol=1e-5, atol=1e-5)
    rows = torch.randn(3, K) * torch.tensor([0.1, 1.0, 30.0])[:, None]
    assert torch.equal(k(rows), torch.cat([k(r[None]) for r in rows]))  # each row on its own grid


@pytest.mark.skipif(not fbgemm_available(), reason="W8A8 needs fbgemm")
@pytest.mark.parametrize("K", [5, 16, 33, 130, 1000])
def test_w8a8_activation_codes_exact(K):
    """An identity weight makes every output one quantised activation: y_k = sx * sw_k * 127 * (q(x)_k - zp), so
    one code off (truncating instead of rounding, a lane of the vector quantiser wrong) moves y_k by a whole grid
    step, far beyond the tolerance; the sum over K in the test above hides such a difference."""
    torch.manual_seed(K)
    lin = torch.nn.Linear(K, K)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(K))
        lin.bias.zero_()
    q = QuantLinear.from_linear(lin, activations="int8")
    k = q.native_kernel()
    for x in (torch.randn(K), torch.randn(K) * 5 + 3, -torch.rand(K) - 0.1):
        torch.testing.assert_close(k(x[None])[0].double(), _fbgemm_reference(x, q), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("N,K", SHAPES)
def test_weight_only_equals_dequantised_product(N, K):
    torch.set_num_threads(2)
    torch.manual_seed(N * 3 + K)
    q = QuantLinear.from_linear(torch.nn.Linear(K, N), activations="float")
    k = q.native_kernel()
    x = torch.randn(2, K)
    exact = F.linear(x, q.dequantized(), q.bias)
    torch.testing.assert_close(k(x), exact, rtol=1e-5, atol=1e-5 * K ** 0.5)


@pytest.mark.parametrize("activations", ["float", pytest.param("int8", marks=pytest.mark.skipif(
    not fbgemm_available(), reason="W8A8 needs fbgemm"))])
def test_quant_linear_uses_the_kernel_for_few_rows(activations, monkeypatch):
    q = QuantLinear.from_linear(torch.nn.Linear(24, 10), activations=activations)
    calls = []
    kernel = q.native_kernel()
    monkeypatch.setattr(type(kernel), "__call__", lambda self, x: calls.append(x.shape) or torch.zeros(
        *x.shape[:-1], self.N))
    q(torch.randn(1, 24))
    q(torch.randn(NATIVE_MAX_ROWS, 24))
    q(torch.randn(NATIVE_MAX_ROWS + 1, 24))  # prefill-sized: the torch kernels
    q(torch.randn(1, 24, dtype=torch.float64))
    assert calls == [(1, 24), (NATIVE_MAX_ROWS, 24)]
    monkeypatch.setenv("LINGVIS_NATIVE", "0")
    assert not native.available() and q.native_kernel() is None
    q(torch.randn(1, 24))
    assert len(calls) == 2


def test_kernel_follows_weight_updates():
    q = QuantLinear.from_linear(torch.nn.Linear(16, 8), activations="float")
    x = torch.randn(1, 16)
    before = q(x)
    with torch.no_grad():
        q.weight_int8.mul_(-1)  # in place: the cached kernel sees the new weights (same storage)
        q.bias.zero_()
    torch.testing.assert_close(q(x), F.linear(x, q.dequantized(), q.bias))
    assert not torch.allclose(q(x), before)


def test_accepts_and_bad_weights():
    k = native.LinearF32(torch.randn(4, 6), None)
    assert not k.accepts(torch.randn(1, 6, dtype=torch.float64))
    assert not k.accepts(torch.randn(native.MAX_ROWS + 1, 6))
    assert not k.accepts(torch.randn(1, 5))
    assert not k.accepts(torch.randn(1, 6, requires_grad=True))
    with torch.no_grad():
        assert k.accepts(torch.randn(1, 6, requires_grad=True))
    with pytest.raises(ValueError, match="contiguous fp32"):
        native.LinearF32(torch.randn(6, 4).t(), None)
    with pytest.raises(ValueError, match="int8"):
        native.LinearInt8(torch.zeros(4, 6, dtype=torch.int8), torch.ones(3), None, "int8")


def test_autograd_keeps_the_torch_path():
    w = torch.nn.Parameter(torch.randn(4, 6))
    k = native.LinearF32(w, None)
    assert not k.accepts(torch.randn(1, 6))  # the weight wants a gradient
    with torch.no_grad():
        assert k.accepts(torch.randn(1, 6))


@pytest.mark.skipif(not fbgemm_available(), reason="W8A8 needs fbgemm")
def test_w8a8_many_long_rows_use_heap_scratch():
    """16 rows x 3000 features (48 KB of quantised activations: past the kernel's stack buffer), 2 threads."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    q = QuantLinear.from_linear(torch.nn.Linear(3000, 24), activations="int8")
    k = q.native_kernel()
    x = torch.randn(native.MAX_ROWS, 3000)
    assert torch.equal(k(x), torch.cat([k(r[None]) for r in x]))
    torch.testing.assert_close(k(x[:1]), q._forward_w8a8(x[:1]), rtol=1e-5, atol=1e-5)
