"""ViT: shapes, gradients, pooling variants, patch embedding = convolution, preset sizes."""
import pytest
import torch
import torch.nn.functional as F

import lingvis
from lingvis.models.vit import ViTConfig
from lingvis.nn.vision import patchify


def test_forward_shapes_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    m = lingvis.build("vit-nano", pooler=True)
    x = torch.randn(2, 3, 32, 32)
    tokens = m.forward_features(x)
    assert tokens.shape == (2, 1 + 16, 32)
    out = m(x)
    assert out.shape == (2, 32) and m.out_dim == 32
    out.square().sum().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_patch_embedding_equals_the_convolution():
    torch.manual_seed(0)
    m = lingvis.build("vit-nano")
    x = torch.randn(2, 3, 32, 32)
    conv = F.conv2d(x, m.patch_embed.weight, m.patch_embed.bias, stride=8).flatten(2).transpose(1, 2)  # (B, N, C)
    ours = F.linear(patchify(x, 8), m.patch_embed.weight.view(32, -1), m.patch_embed.bias)
    assert torch.allclose(conv, ours, atol=1e-5)


def test_clip_style_norms_only_the_pooled_token():
    torch.manual_seed(0)
    m = lingvis.build("vit-nano", pre_norm=True, final_norm="pooled", patch_bias=False).eval()
    x = torch.randn(2, 3, 32, 32)
    tokens = m.forward_features(x)
    assert torch.allclose(m(x), m.ln_post(tokens[:, 0]), atol=1e-6)
    assert m.patch_embed.bias is None and m.ln_pre is not None


def test_mean_pooling_uses_patch_tokens():
    torch.manual_seed(0)
    m = lingvis.build("vit-nano", pool="mean").eval()
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(m(x), m.forward_features(x)[:, 1:].mean(1), atol=1e-6)


def test_bad_inputs_and_configs_have_clear_errors():
    m = lingvis.build("vit-nano")
    with pytest.raises(ValueError, match=r"expected pixels \(B, 3, H, W\)"):
        m(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        ViTConfig(image_size=30, patch_size=8)
    with pytest.raises(ValueError, match="pool must be"):
        ViTConfig(pool="max")


@pytest.mark.parametrize("name,count", [("vit-b-32", 87_456_000), ("vit-b-16", 85_799_424)])
def test_preset_sizes(name, count):
    with torch.device("meta"):
        m = lingvis.build(name)
    assert sum(p.numel() for p in m.parameters()) == count
