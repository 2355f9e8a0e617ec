"""The frame-major inference forward of the divided-attention video Transformer equals the block-by-block
forward (odd shapes, batch 2) with either GEMM kernel (MKL, oneDNN packed), and its folded temporal projection
follows weight updates."""
import pytest
import torch

from lingvis.models.video import TIMESFORMER, VideoConfig, VideoTransformer
from lingvis.models.video_fast import divided_forward, folded_temporal_out


def _model():
    torch.manual_seed(0)
    c = VideoConfig(image_size=24, patch_size=8, frames=5, dim=48, depth=3, heads=3, mlp_hidden=80,
                    labels=list("abcdefg"), **TIMESFORMER)
    m = VideoTransformer(c).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.2)
    return m


def _blockwise(m, x):
    return m.head(m.pool(m.forward_features(x)))


@pytest.mark.parametrize("kernel", ["mkl", "onednn"])
def test_divided_inference_forward_equals_the_blockwise_forward(kernel, monkeypatch):
    monkeypatch.setenv("LINGVIS_GEMM", kernel)
    m, x = _model(), torch.randn(2, 5, 3, 24, 24)
    want = _blockwise(m, x).detach()
    with torch.inference_mode():
        got = m(x)
        direct = m.head(divided_forward(m, x))
    assert got.shape == want.shape == (2, 7)
    assert (got - want).abs().max() <= 1e-5 and want.abs().max() > 0.1
    assert torch.equal(got, direct)
    with torch.no_grad():
        assert (m(x[:1]) - want[:1]).abs().max() <= 1e-5  # batch 1


def test_folded_projection_follows_weight_updates():
    m, x = _model(), torch.randn(1, 5, 3, 24, 24)
    attn = m.blocks[0].temporal_attn
    w, b = folded_temporal_out(attn)
    y = torch.randn(4, 48)
    assert torch.allclose(torch.nn.functional.linear(y, w, b), attn.fc(attn.proj(y)), atol=1e-5)
    with torch.no_grad():
        attn.fc.weight.mul_(2)  # an in-place update, as an optimizer step makes
        m(x)
        assert (m(x) - _blockwise(m, x)).abs().max() <= 1e-5
    w2, _ = folded_temporal_out(attn)
    assert not torch.allclose(w, w2)


def test_training_mode_keeps_the_blockwise_forward_with_gradients():
    m, x = _model(), torch.randn(1, 5, 3, 24, 24)
    m.train()
    m(x).sum().backward()
    assert m.blocks[0].temporal_attn.fc.weight.grad is not None


@pytest.mark.parametrize("kernel", ["mkl", "onednn"])
def test_joint_inference_forward_equals_the_blockwise_forward(kernel, monkeypatch):
    monkeypatch.setenv("LINGVIS_GEMM", kernel)
    from lingvis.models.video import VIDEOMAE
    torch.manual_seed(0)
    for extra in ({}, {"qkv_bias": False}):
        c = VideoConfig(image_size=24, patch_size=8, frames=6, dim=48, depth=2, heads=3, mlp_hidden=80,
                        labels=list("abcde"), **{**VIDEOMAE, **extra})
        m = VideoTransformer(c).eval()
        with torch.no_grad():
            for p in m.parameters():
                p.normal_(0, 0.2)
        x = torch.randn(2, 6, 3, 24, 24)
        want = _blockwise(m, x).detach()
        with torch.inference_mode():
            got = m(x)
        assert got.shape == (2, 5) and (got - want).abs().max() <= 1e-5 and want.abs().max() > 0.1


def test_mlp_forward_equals_the_mlp():
    from lingvis.models.video_fast import mlp_forward
    from lingvis.nn.mlp import MLP
    torch.manual_seed(0)
    for act in ("gelu", "gelu_tanh", "relu"):
        mlp = MLP(24, 40, act).eval()
        h = torch.randn(2, 3, 7, 24)
        with torch.no_grad():
            got, want = mlp_forward(mlp, h), mlp(h)
        assert got.shape == want.shape and (got - want).abs().max() <= 1e-5


def test_divided_attention_with_fixed_positions_keeps_the_blockwise_forward():
    torch.manual_seed(0)
    c = VideoConfig(image_size=16, patch_size=8, frames=3, dim=32, depth=1, heads=2, mlp_hidden=40,
                    **{**TIMESFORMER, "positions": "sinusoidal"})
    m = VideoTransformer(c).eval()
    x = torch.randn(1, 3, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(m(x), m.pool(m.forward_features(x)))


@pytest.mark.parametrize("kernel", ["mkl", "onednn"])
@pytest.mark.parametrize("tubelet, patch, frames, size, batch", [(2, 4, 6, 12, 2), (1, 5, 3, 15, 1), (3, 3, 3, 9, 2)])
def test_tubelet_tokens_equal_the_patch_convolution(kernel, tubelet, patch, frames, size, batch, monkeypatch):
    from lingvis.models.video_fast import tubelet_tokens

    monkeypatch.setenv("LINGVIS_GEMM", kernel)
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(3, 7, (tubelet, patch, patch), (tubelet, patch, patch))
    x = torch.randn(batch, frames, 3, size, size)  # (B, F, C, H, W)
    ref = conv(x.transpose(1, 2))  # (B, D, T, g, g)
    want = ref.flatten(3).permute(0, 2, 3, 1)  # (B, T, N, D)
    with torch.no_grad():
        got = tubelet_tokens(conv, x)
    g = size // patch
    assert got.shape == (batch, frames // tubelet, g * g, 7)
    torch.testing.assert_close(got, want.detach(), rtol=1e-5, atol=1e-5)
    # the token rows, time-major patches: token (t, i, j) is the convolution's output at (t, i, j)
    assert torch.allclose(got[-1, 0, g + 1], ref[-1, :, 0, 1, 1].detach(), atol=1e-5)
    y = tubelet_tokens(conv, x)  # autograd on: the convolution itself
    assert y.grad_fn is not None
    torch.testing.assert_close(y, want)
