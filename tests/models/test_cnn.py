"""CNN: same API as ViT, attention and mean pooling, bottleneck blocks, gradients, config errors."""
import pytest
import torch

import lingvis
from lingvis.models.cnn import CNNConfig


@pytest.mark.parametrize("pool", ["attention", "mean"])
def test_features_pooled_and_gradients(pool):
    torch.manual_seed(0)
    m = lingvis.build("cnn-nano", pool=pool, embed_dim=24)
    x = torch.randn(2, 3, 32, 32)
    tokens = m.forward_features(x)
    assert tokens.shape == (2, m.config.feature_size ** 2, 32)  # 32px / (2 * 2) = 8 -> 64 tokens
    assert m.config.feature_size == 8
    out = m(x)
    assert out.shape == (2, 24) and m.out_dim == 24
    out.square().sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_attention_pool_depends_on_every_location():
    torch.manual_seed(0)
    m = lingvis.build("cnn-nano").eval()
    tokens = torch.randn(1, 64, 32, requires_grad=True)
    m.pool(tokens).sum().backward()
    assert (tokens.grad.abs().sum(-1) > 0).all()


def test_bottleneck_and_groupnorm():
    m = lingvis.build("cnn-nano", block="bottleneck", norm="groupnorm")
    assert m.config.feature_dim == 128
    assert m(torch.randn(1, 3, 32, 32)).shape == (1, 128)


def test_wrong_input_and_config_errors():
    m = lingvis.build("cnn-nano")
    with pytest.raises(ValueError, match="expected pixels"):
        m(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="built for 64 feature-map tokens"):
        m(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="equally long"):
        CNNConfig(widths=[8, 16], depths=[1])
    with pytest.raises(ValueError, match="pool must be one of"):
        CNNConfig(pool="max")
