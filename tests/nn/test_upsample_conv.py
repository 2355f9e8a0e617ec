"""The phase form of nearest-x2-upsample + 3x3 convolution (nn/upsample_conv.py) equals the plain
interpolate-then-convolve, keeps channels-last, follows weight updates and falls back elsewhere."""
import pytest
import torch
import torch.nn.functional as F

from lingvis.nn import packed_conv, upsample_conv


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def _plain(conv, x):
    return conv(F.interpolate(x.contiguous(), scale_factor=2.0, mode="nearest"))


def test_phase_weight_taps():
    """Phase (a, b)'s 2x2 kernel sums the 3x3 taps that land on each low-resolution neighbour."""
    w = torch.arange(9.0).reshape(1, 1, 3, 3)  # rows [0 1 2], [3 4 5], [6 7 8]
    p = upsample_conv.phase_weight(w)[:, 0]  # (4, 2, 2)
    assert torch.equal(p[0], torch.tensor([[0.0, 1 + 2], [3 + 6, 4 + 5 + 7 + 8]]))  # a = 0, b = 0
    assert torch.equal(p[3], torch.tensor([[0 + 1 + 3 + 4, 2 + 5], [6 + 7, 8.0]]))  # a = 1, b = 1


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("shape,bias", [((2, 6, 5, 7), True), ((3, 4, 1, 3), False), ((1, 8, 4, 4), True)])
def test_matches_interpolate_then_conv(monkeypatch, packed, shape, bias):
    monkeypatch.setattr(packed_conv, "ENABLED", packed and packed_conv.ENABLED)
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(shape[1], 5, 3, padding=1, bias=bias)
    x = _cl(torch.randn(*shape))
    with torch.no_grad():
        assert upsample_conv.supports(conv, x)
        y = upsample_conv.upsample_conv(conv, x)
        ref = _plain(conv, x)
    assert y.shape == ref.shape == (shape[0], 5, 2 * shape[2], 2 * shape[3])
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(y, ref, atol=1e-5), float((y - ref).abs().max())


def test_follows_weight_updates_and_falls_back(monkeypatch):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    x = _cl(torch.randn(2, 4, 3, 5))
    with torch.no_grad():
        upsample_conv.upsample_conv(conv, x)
        conv.weight.mul_(-1.5)
        conv.bias.add_(2.0)
        assert torch.allclose(upsample_conv.upsample_conv(conv, x), _plain(conv, x), atol=1e-5)
    assert not any(n.startswith("_lingvis") for n, _ in conv.named_modules())  # the phase conv is not registered
    assert set(conv.state_dict()) == {"weight", "bias"}
    y = upsample_conv.upsample_conv(conv, x)  # autograd on: the plain path, differentiable
    assert y.requires_grad and torch.allclose(y, _plain(conv, x), atol=1e-6)
    with torch.no_grad():
        assert not upsample_conv.supports(conv, x.contiguous())  # NCHW
        assert not upsample_conv.supports(torch.nn.Conv2d(4, 4, 3, padding=1, stride=2), x)
        assert not upsample_conv.supports(torch.nn.Conv2d(4, 4, 5, padding=2), x)
        monkeypatch.setattr(upsample_conv, "ENABLED", False)
        assert not upsample_conv.supports(conv, x)
