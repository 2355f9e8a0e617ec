"""The UNet's inference layout (channels-last feature maps, cached channels-last conv weights, in-place adds)
gives the training path's output, follows weight updates, and returns a plain NCHW tensor."""
import contextlib

import torch

from lingvis.models.unet import UNet, UNetConfig
from lingvis.models.unet_blocks import ResBlock, Upsample, conv2d, grow
from lingvis.nn import packed_conv, upsample_conv


def _unet(linear: bool = False) -> UNet:
    torch.manual_seed(0)
    return UNet(UNetConfig(in_channels=3, out_channels=5, sample_size=12, block_out_channels=[8, 16],
                           down_attention=[True, True], layers_per_block=[1, 2], attention_heads=2,
                           cross_attention_dim=12, norm_num_groups=4, use_linear_projection=linear)).eval()


def _inputs(b: int = 2, k: int = 2):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, 3, 10, 14, generator=g)  # odd-ish sizes: 10x14 -> 5x7
    t = torch.tensor([3.0, 700.0][:b])
    text = torch.randn(k * b, 5, 12, generator=g)  # k prompts per image (guidance)
    return x, t, text


def test_inference_layout_matches_training_path():
    for linear in (False, True):
        unet = _unet(linear)
        x, t, text = _inputs()
        with torch.no_grad():
            fast = unet(x, t, text)
        plain = unet(x, t, text)  # grad enabled: the NCHW path, no in-place ops
        assert fast.shape == plain.shape == (4, 5, 10, 14)
        assert fast.is_contiguous()
        assert torch.allclose(fast, plain.detach(), atol=1e-5), float((fast - plain).abs().max())
        if packed_conv.ENABLED:  # the 3x3 convolutions ran on packed weights, conv2 with the residual fused
            assert all(packed_conv._CACHE in r.conv2.__dict__ for r in unet.modules() if isinstance(r, ResBlock))
        if upsample_conv.ENABLED:  # the upsamplers ran as one 2x2 convolution on the small map
            assert all(upsample_conv._CACHE in u.conv.__dict__ for u in unet.modules() if isinstance(u, Upsample))
            with torch.no_grad(), _packed(False):
                assert torch.allclose(unet(x, t, text), fast, atol=1e-5)


@contextlib.contextmanager
def _packed(on: bool):
    old, packed_conv.ENABLED = packed_conv.ENABLED, on
    try:
        yield
    finally:
        packed_conv.ENABLED = old


def test_cached_weights_follow_updates():
    unet = _unet()
    x, t, text = _inputs()
    with torch.no_grad():
        before = unet(x, t, text)
        for p in unet.parameters():  # an optimizer-like in-place update
            if p.dim() == 4:
                p.mul_(1.5)
        after = unet(x, t, text)
    expected = unet(x, t, text).detach()
    assert not torch.allclose(before, after, atol=1e-3)
    assert torch.allclose(after, expected, atol=1e-5)
    unet.load_state_dict({k: v * 0.5 if v.dim() == 4 else v for k, v in unet.state_dict().items()})
    with torch.no_grad():
        reloaded = unet(x, t, text)
    assert torch.allclose(reloaded, unet(x, t, text).detach(), atol=1e-5)


def test_conv2d_and_grow_keep_channels_last():
    conv = torch.nn.Conv2d(4, 6, 3, padding=1)
    x = torch.randn(2, 4, 5, 7).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        for on in (False, True):  # the channels-last weight copy, and oneDNN's packed weight
            with _packed(on):
                y = conv2d(conv, x)
            assert y.is_contiguous(memory_format=torch.channels_last)
            assert torch.allclose(y, conv(x.contiguous()), atol=1e-5)
        g = grow(y, 6)
    assert g.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(g, y.repeat(3, 1, 1, 1))


def test_vae_decoder_inference_layout_matches_training_path():
    from lingvis.models.vae import AutoencoderKL, VAEConfig

    torch.manual_seed(0)
    vae = AutoencoderKL(VAEConfig(block_out_channels=[8, 16], layers_per_block=1, norm_num_groups=4)).eval()
    z = torch.randn(2, 4, 5, 7)
    with torch.no_grad():
        fast = vae.decode(z)
    plain = vae.decode(z).detach()
    assert fast.shape == plain.shape == (2, 3, 10, 14) and fast.is_contiguous()
    assert torch.allclose(fast, plain, atol=1e-5)


def test_geglu_inference_split_matches_training_path():
    """In inference GEGLU runs `fc` as two products (the gate with oneDNN's fused GELU); equal to the plain
    MLP within float rounding, for widths that take either kernel, with and without bias, and on a
    non-contiguous input."""
    from lingvis.models.unet_blocks import GEGLU

    torch.manual_seed(0)
    for dim, rows, bias in ((8, 12, True), (64, 300, True), (32, 40, False)):
        mlp = GEGLU(dim, 4 * dim, "geglu", bias=bias).eval()
        x = torch.randn(2, rows, dim)
        for inp in (x, torch.randn(2, dim, rows).transpose(1, 2)):
            with torch.no_grad():
                fast = mlp(inp)
            plain = mlp(inp)  # grad enabled: the shared MLP (one fc product, GELU, product)
            assert fast.shape == plain.shape == inp.shape
            assert torch.allclose(fast, plain.detach(), atol=1e-5, rtol=1e-5), float((fast - plain).abs().max())
        with torch.no_grad():  # the packed halves follow a weight update
            mlp.fc.weight[:dim].mul_(-1)
            fast = mlp(x)
        assert torch.allclose(fast, mlp(x).detach(), atol=1e-5, rtol=1e-5)


def test_time_projections_one_product_match_per_block_and_follow_updates():
    """In inference the UNet runs every ResBlock's time projection as one product (`TimeProjections`): each
    block's view equals its own `time_proj(act(temb))` tiled, and the concatenated weights follow updates."""
    unet = _unet()
    x, t, text = _inputs()
    blocks = [m for m in unet.modules() if isinstance(m, ResBlock)]
    temb = torch.randn(2, blocks[0].time_proj.in_features)
    with torch.no_grad():
        shared = unet._time_projections(temb)
        for b in blocks:
            for rows in (2, 4):
                own = grow(b.time_proj(unet.act(temb)), rows)
                assert torch.allclose(shared.of(b, rows), own, atol=1e-6)
        before = unet(x, t, text)
        blocks[-1].time_proj.weight.mul_(3.0)
        blocks[0].time_proj.bias.add_(1.0)
        after = unet(x, t, text)
    assert not torch.allclose(before, after, atol=1e-4)
    assert torch.allclose(after, unet(x, t, text).detach(), atol=1e-5)  # the training path (per-block products)
