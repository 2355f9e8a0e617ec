"""The native channels-last GroupNorm (+ add, + SiLU) kernel (native/group_norm.c) against torch's GroupNorm
and SiLU: odd sizes and channel counts (the masked vector tail), with and without affine, the add and the
activation, in place, on several threads; what it refuses."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lingvis.native import available
from lingvis.native.group_norm import group_norm_nhwc, supports

pytestmark = pytest.mark.skipif(not available(), reason="native kernels did not build")


def _case(B, C, H, W, G, affine=True, seed=0):
    torch.manual_seed(seed)
    norm = nn.GroupNorm(G, C, eps=1e-6, affine=affine)
    if affine:
        nn.init.normal_(norm.weight)
        nn.init.normal_(norm.bias)
    x = (torch.randn(B, C, H, W) * 3 + 1.5).contiguous(memory_format=torch.channels_last)  # (B, C, H, W) NHWC
    return norm, x, torch.randn(B, C) * 2  # add: (B, C)


@pytest.mark.parametrize("B,C,H,W,G", [(2, 32, 8, 8, 8), (1, 24, 5, 7, 4), (3, 40, 3, 3, 8), (2, 128, 16, 16, 32),
                                       (1, 17, 4, 4, 17), (2, 96, 1, 2, 8)])
@pytest.mark.parametrize("affine", [True, False])
def test_matches_torch(B, C, H, W, G, affine):
    norm, x, add = _case(B, C, H, W, G, affine)
    with torch.no_grad():
        for a in (None, add):
            for silu in (False, True):
                want = norm(x if a is None else x + a[:, :, None, None])
                want = F.silu(want) if silu else want
                got = group_norm_nhwc(x, norm, add=a, silu=silu)
                assert got.is_contiguous(memory_format=torch.channels_last)
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_in_place_and_threads():
    norm, x, add = _case(4, 64, 9, 9, 8)
    with torch.no_grad():
        want = F.silu(norm(x + add[:, :, None, None]))
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(2)
            two = group_norm_nhwc(x, norm, add=add, silu=True)
        finally:
            torch.set_num_threads(threads)
        y = x.clone()
        same = group_norm_nhwc(y, norm, add=add, silu=True, out=y)
    assert same.data_ptr() == y.data_ptr()
    torch.testing.assert_close(same, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(two, want, rtol=1e-5, atol=1e-5)


def test_refuses_what_it_does_not_take():
    norm, x, _ = _case(2, 32, 4, 4, 8)
    assert not supports(x, norm)  # autograd on and the norm's parameters need gradients
    with torch.no_grad():
        assert supports(x, norm)
        assert not supports(x.contiguous(), norm)  # NCHW
        assert not supports(x.double(), norm)
        assert not supports(x[:, :16], norm)  # channel count differs
    with pytest.raises(ValueError, match="channels-last"):
        group_norm_nhwc(x.detach().contiguous(), norm)


def test_checked_call_and_strided_parameters():
    norm, x, add = _case(2, 24, 5, 3, 4)
    with torch.no_grad():
        want = F.silu(norm(x + add[:, :, None, None]))
        assert torch.equal(group_norm_nhwc(x, norm, add=add, silu=True, checked=True),
                           group_norm_nhwc(x, norm, add=add, silu=True))
        strided = nn.GroupNorm(4, 24, eps=1e-6)  # parameters that are every other element of a longer tensor
        strided.weight = nn.Parameter(torch.stack([norm.weight.detach(), torch.randn(24)], 1).reshape(-1)[::2])
        strided.bias = nn.Parameter(torch.stack([norm.bias.detach(), torch.randn(24)], 1).reshape(-1)[::2])
        assert not strided.weight.is_contiguous() and torch.equal(strided.weight, norm.weight)
        torch.testing.assert_close(group_norm_nhwc(x, strided, add=add, silu=True), want, rtol=1e-5, atol=1e-5)
