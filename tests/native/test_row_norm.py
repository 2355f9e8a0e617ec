"""The native row norms (native/row_norm.c): LayerNorm and RMSNorm over the last dimension, optionally after a
residual add, against torch's layer_norm and the RMSNorm formula written out: odd widths (the vector tails),
one row, with and without weight / bias, on one and two threads; what `supports` refuses."""
import pytest
import torch
import torch.nn.functional as F

from lingvis.native import available
from lingvis.native.row_norm import add_norm, row_norm, supports

pytestmark = pytest.mark.skipif(not available(), reason="native kernels did not build")

SHAPES = [(1, 220, 512), (2, 7, 33), (1, 1, 5), (3, 384), (700, 100)]  # the last one: rows split over threads


def _rms(v, w, eps):
    return v / torch.sqrt((v * v).mean(-1, keepdim=True) + eps) * (1 if w is None else w)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_add_norm_matches_torch(shape, affine, threads):
    torch.manual_seed(0)
    C = shape[-1]
    x, r = torch.randn(shape) * 3 + 1.5, torch.randn(shape)
    w, b = (torch.randn(C), torch.randn(C)) if affine else (None, None)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            s, y = add_norm(x, r, w, b, 1e-5, rms=False)
            s2, y2 = add_norm(x, r, w, b, 1e-6, rms=True)  # RMSNorm ignores the bias
            y3 = row_norm(x, w, b, 1e-5, rms=False)
            y4 = row_norm(x, w, None, 1e-6, rms=True)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(s, x + r) and torch.equal(s2, x + r) and s.shape == y.shape == shape
    torch.testing.assert_close(y, F.layer_norm(x + r, (C,), w, b, 1e-5), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y2, _rms(x + r, w, 1e-6), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y3, F.layer_norm(x, (C,), w, b, 1e-5), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y4, _rms(x, w, 1e-6), rtol=1e-5, atol=1e-5)
    assert row_norm(x, w, b, 1e-5, rms=False).data_ptr() != x.data_ptr()  # a new tensor, x untouched


def test_non_contiguous_weight_is_read_as_a_copy():
    torch.manual_seed(1)
    x = torch.randn(4, 6)
    w = torch.randn(6, 2)[:, 0]  # stride 2
    with torch.no_grad():
        torch.testing.assert_close(row_norm(x, w, None, 1e-6, rms=True), _rms(x, w, 1e-6), rtol=1e-5, atol=1e-6)


def test_supports_refuses():
    x, w = torch.randn(2, 3, 8), torch.randn(8)
    with torch.no_grad():
        assert supports(x, w) and supports(x, None) and supports(x, w, torch.randn(8))
        assert not supports(x.double(), w.double())
        assert not supports(x.transpose(0, 1), w)  # not contiguous
        assert not supports(x, torch.randn(7))  # the weight does not match the width
        assert not supports(torch.randn(0, 8), w)
    w.requires_grad_(True)
    assert not supports(x, w)  # autograd would need the torch path
    with torch.no_grad():
        assert supports(x, w)
    with pytest.raises(ValueError, match="residual"):
        add_norm(x, torch.randn(2, 3, 7), None, None, 1e-5, rms=True)
