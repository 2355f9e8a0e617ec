"""The native rotary embedding (native/rotary.c) against the rotate-half formula written out: strided views of a
fused projection, one table for the batch or one per row, odd head counts and lengths, one and two threads;
what `supports` refuses, and `nn.position.apply_rotary` taking it without autograd."""
import pytest
import torch

from lingvis.native import available
from lingvis.native.rotary import rotary, supports
from lingvis.nn.position import apply_rotary

pytestmark = pytest.mark.skipif(not available(), reason="native kernels did not build")


def _tables(B, T, D, seed=0):
    g = torch.Generator().manual_seed(seed)
    ang = torch.rand(B, T, D // 2, generator=g) * 20
    emb = torch.cat([ang, ang], dim=-1)[:, None]  # (B, 1, T, D)
    return emb.cos(), emb.sin()


def _ref(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


@pytest.mark.parametrize("B, H, T, D", [(1, 8, 220, 64), (3, 5, 7, 6), (2, 1, 1, 2), (4, 16, 33, 128)])
@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_rotary_matches_the_formula_on_strided_views(B, H, T, D, per_row, threads):
    torch.manual_seed(0)
    qkv = torch.randn(B, T, 3 * H * D)  # a fused projection: q, k, v side by side
    q = qkv[..., :H * D].view(B, T, H, D).transpose(1, 2)  # (B, H, T, D) strided
    cos, sin = _tables(B if per_row else 1, T, D)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            assert supports(q, cos, sin)
            y = rotary(q, cos, sin)
            z = apply_rotary(q, cos.expand(B, 1, T, D), sin.expand(B, 1, T, D))  # a broadcast table (stride 0)
    finally:
        torch.set_num_threads(old)
    assert y.shape == q.shape and y.is_contiguous()
    torch.testing.assert_close(y, _ref(q, cos, sin), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(z, _ref(q, cos, sin), rtol=1e-6, atol=1e-6)


def test_supports_refuses():
    x = torch.randn(2, 3, 5, 8)
    cos, sin = _tables(2, 5, 8)
    with torch.no_grad():
        assert supports(x, cos, sin) and supports(x, cos[:1], sin[:1])
        assert not supports(x[..., :7], cos[..., :7], sin[..., :7])  # odd head width
        assert not supports(x.double(), cos.double(), sin.double())
        assert not supports(x.transpose(-1, -2), cos, sin)  # the last dimension strided
        assert not supports(x, cos[:, :, :4], sin[:, :, :4])  # the table covers other positions
        assert not supports(x, cos[0], sin[0])  # a 3-D table: torch broadcasting
        assert not supports(x, cos, sin[:1])  # two layouts
    x.requires_grad_(True)
    assert not supports(x, cos, sin)
    y = apply_rotary(x, cos, sin)  # autograd on: the torch formula
    assert y.grad_fn is not None
    torch.testing.assert_close(y.detach(), _ref(x.detach(), cos, sin), rtol=1e-6, atol=1e-6)
