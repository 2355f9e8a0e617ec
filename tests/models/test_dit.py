"""DiT on the shared block: adaLN-zero starts as the identity (predicts zeros), conditioning reaches every
branch, text padding and the empty (unconditional) text are handled, and it learns a denoising step."""
import pytest
import torch

import lingvis
from lingvis.models.dit import DiT, DiTConfig, timestep_embedding


def test_zero_init_predicts_zeros_and_blocks_are_modulated_branches():
    model = lingvis.build("dit-nano").eval()
    x = torch.randn(2, 3, 16, 16)
    out = model(x, torch.tensor([1, 500]), torch.randn(2, 4, 32))
    assert out.shape == x.shape and torch.equal(out, torch.zeros_like(out))
    block = model.blocks[0]
    assert [b[1] for b in block.branches] == ["attn", "cross_attn", "mlp"]
    assert all(b[2] is not None for b in block.branches)  # every branch has its modulation


def test_conditioning_and_text_reach_the_output_after_training_a_step():
    torch.manual_seed(0)
    model = lingvis.build("dit-nano")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x0 = torch.randn(4, 3, 16, 16)
    text = torch.randn(4, 4, 32)
    for _ in range(30):
        t = torch.randint(0, 1000, (4,))
        noise = torch.randn_like(x0)
        loss = (model(x0 + noise, t, text) - noise).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 16, 16)
        a = model(x, torch.tensor([10]), text[:1])
        assert not torch.allclose(a, model(x, torch.tensor([900]), text[:1]), atol=1e-4)  # timestep matters
        assert not torch.allclose(a, model(x, torch.tensor([10]), text[1:2]), atol=1e-4)  # text matters
        mask = torch.tensor([[1, 1, 0, 0]])
        other = text[:1].clone()
        other[:, 2:] = 100.0  # padded text tokens do not matter
        assert torch.allclose(model(x, torch.tensor([10]), text[:1], mask), model(x, torch.tensor([10]), other, mask),
                              atol=1e-5)
        empty = torch.zeros(1, 4, dtype=torch.long)  # an unconditional row: finite output
        assert torch.isfinite(model(x, torch.tensor([10]), text[:1], empty)).all()


def test_timestep_embedding_and_bad_shapes():
    e = timestep_embedding(torch.tensor([0.0, 10.0]), 8)
    assert e.shape == (2, 8) and torch.equal(e[0, :4], torch.ones(4))
    with pytest.raises(ValueError, match="not divisible"):
        DiTConfig(sample_size=30, patch_size=4)
    with pytest.raises(ValueError, match=r"x_t \(B, 3, 16, 16\)"):
        DiT(DiTConfig(sample_size=16, patch_size=4, dim=32, depth=1, heads=2, text_dim=8))(
            torch.randn(1, 3, 8, 8), torch.tensor([1]), torch.randn(1, 2, 8))


def test_conv_head_starts_at_zero_crosses_patch_borders_and_learns():
    torch.manual_seed(0)
    cfg = DiTConfig(sample_size=16, patch_size=4, dim=32, depth=1, heads=2, text_dim=8, conv_out=8)
    model = DiT(cfg)
    assert model.proj_feat.weight.shape == (4 * 4 * 8, 32) and model.conv_out[-1].out_channels == 3
    x, t, text = torch.randn(2, 3, 16, 16), torch.tensor([3, 700]), torch.randn(2, 2, 8)
    assert torch.equal(model(x, t, text), torch.zeros_like(x))  # adaLN-zero: the last conv is zero too
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    # a target that is smooth across the 4px patch seams: a blurred blob
    target = torch.nn.functional.avg_pool2d(torch.randn(2, 3, 16, 16), 5, 1, 2)
    first = None
    for _ in range(60):
        loss = (model(x, t, text) - target).square().mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    # without blocks, a pixel sees its neighbouring patch only through the conv head
    for conv_out, crosses in ((0, False), (8, True)):
        head = DiT(DiTConfig(sample_size=16, patch_size=4, dim=32, depth=0, heads=2, text_dim=8, conv_out=conv_out))
        for p in head.parameters():  # no zero-initialised layers, so gradients flow
            torch.nn.init.normal_(p, std=0.1)
        xi = x[:1].clone().requires_grad_(True)
        head(xi, t[:1], text[:1])[0, :, 4, 3].sum().backward()  # pixel (4, 3): patch (1, 0), next to patch (1, 1)
        assert (xi.grad[0, :, 4:8, 4:8].abs().sum() > 0) == crosses
    with pytest.raises(ValueError, match="conv_out"):
        DiTConfig(conv_out=-1)


def test_conv_skip_gives_the_head_the_noisy_pixels():
    torch.manual_seed(0)
    cfg = DiTConfig(sample_size=16, patch_size=4, dim=32, depth=0, heads=2, text_dim=8, conv_out=8, conv_skip=True)
    model = DiT(cfg)
    assert model.conv_out[0].in_channels == 8 + 3
    x, t, text = torch.randn(2, 3, 16, 16), torch.tensor([3, 700]), torch.randn(2, 2, 8)
    assert torch.equal(model(x, t, text), torch.zeros_like(x))  # still starts at zero
    plain = DiT(DiTConfig(sample_size=16, patch_size=4, dim=32, depth=0, heads=2, text_dim=8, conv_out=8))
    assert set(plain.state_dict()) == set(model.state_dict())  # the same keys, a wider first conv
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    torch.nn.init.zeros_(model.patch_embed.weight)  # the tokens no longer see x_t: only the skip does
    torch.nn.init.zeros_(model.patch_embed.bias)
    xi = x[:1].clone().requires_grad_(True)
    model(xi, t[:1], text[:1])[0, :, 5, 5].sum().backward()
    grad = xi.grad[0].abs().sum(0)  # (16, 16)
    assert grad[4:7, 4:7].sum() > 0 and grad[:3].sum() == 0 and grad[:, 8:].sum() == 0  # the 3x3 x 3x3 neighbourhood
    with pytest.raises(ValueError, match="conv_skip"):
        DiTConfig(conv_skip=True)
