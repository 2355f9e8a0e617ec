"""The packed-weight convolution (nn/packed_conv.py) gives `conv(x)` (+ add) on channels-last inference inputs,
follows weight updates and new input shapes, and falls back to the module elsewhere."""
import pytest
import torch

from lingvis.nn import packed_conv


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


needs_ops = pytest.mark.skipif(not packed_conv.ENABLED, reason="oneDNN convolution ops missing or switched off")


@needs_ops
@pytest.mark.parametrize("stride,padding,bias", [(1, 1, True), (2, 1, True), (2, 0, False), (1, 0, True)])
def test_matches_module(stride, padding, bias):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 10, 3, stride=stride, padding=padding, bias=bias)
    x = _cl(torch.randn(3, 6, 9, 7))
    with torch.no_grad():
        assert packed_conv.eligible(conv, x)
        y = packed_conv.conv2d(conv, x)
        ref = conv(x.contiguous())
        assert y.shape == ref.shape == packed_conv.out_shape(conv, x)
        assert y.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(y, ref, atol=1e-5), float((y - ref).abs().max())


@needs_ops
def test_fused_add_out_of_place_and_into():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    x = _cl(torch.randn(2, 8, 5, 6))
    other = _cl(torch.randn(2, 8, 5, 6))
    with torch.no_grad():
        ref = conv(x.contiguous()) + other
        keep = other.clone()
        y = packed_conv.conv2d(conv, x, add=other)
        assert torch.equal(other, keep)  # out of place: `add` untouched
        assert torch.allclose(y, ref, atol=1e-5)
        z = packed_conv.conv2d(conv, x, add=other, add_into=True)
        assert z.data_ptr() == other.data_ptr()  # the sum written into `add`
        assert torch.allclose(other, ref, atol=1e-5)
        nchw = keep.contiguous()  # an `add` oneDNN's post-op does not take: conv then a plain add
        assert torch.allclose(packed_conv.conv2d(conv, x, add=nchw), ref, atol=1e-5)


@needs_ops
def test_follows_weight_updates_and_shapes():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    a, b = _cl(torch.randn(2, 4, 6, 6)), _cl(torch.randn(4, 4, 3, 5))
    with torch.no_grad():
        for x in (a, b, a):  # two input shapes: a packed copy each
            assert torch.allclose(packed_conv.conv2d(conv, x), conv(x.contiguous()), atol=1e-5)
        assert len(conv.__dict__[packed_conv._CACHE][1]) == 2
        conv.weight.mul_(-2.0)  # an optimizer-like in-place update: the copies are remade
        assert torch.allclose(packed_conv.conv2d(conv, a), conv(a.contiguous()), atol=1e-5)
        assert len(conv.__dict__[packed_conv._CACHE][1]) == 1
    conv.load_state_dict({"weight": torch.randn(4, 4, 3, 3), "bias": torch.zeros(4)})
    with torch.no_grad():
        assert torch.allclose(packed_conv.conv2d(conv, a), conv(a.contiguous()), atol=1e-5)


def test_falls_back_outside_inference(monkeypatch):
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    x = _cl(torch.randn(2, 4, 6, 6))
    assert not packed_conv.eligible(conv, x)  # autograd on
    y = packed_conv.conv2d(conv, x, add=torch.ones(2, 4, 6, 6))
    assert y.requires_grad and torch.allclose(y, conv(x) + 1)
    with torch.no_grad():
        assert not packed_conv.eligible(conv, x.contiguous())  # NCHW input
        assert not packed_conv.eligible(torch.nn.Conv2d(4, 4, 3, padding="same"), x)
        assert not packed_conv.eligible(torch.nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), x)
        monkeypatch.setattr(packed_conv, "ENABLED", False)
        assert not packed_conv.eligible(conv, x)
        assert torch.allclose(packed_conv.conv2d(conv, x), conv(x), atol=1e-6)
    assert packed_conv._CACHE not in conv.__dict__  # nothing packed on any of these paths
