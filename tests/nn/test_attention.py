"""Attention: SDPA result vs an explicit softmax reference, KV cache == full pass, masks, cross-attention."""
import math

import pytest
import torch

from lingvis.nn import Attention, KVCache, Rotary, causal_mask, combine, padding_mask


def reference(attn: Attention, x, memory=None, mask=None, causal=False, rope=None):
    """Plain-PyTorch attention written out by hand."""
    B, T, C = x.shape
    H, D = attn.n_heads, attn.head_dim
    heads = lambda t: t.view(B, t.shape[1], H, D).transpose(1, 2)  # noqa: E731
    if attn.cross:
        q = heads(attn.q(x))
        k, v = (heads(t) for t in attn.kv(memory).chunk(2, dim=-1))
    else:
        q, k, v = (heads(t) for t in attn.qkv(x).split(H * D, dim=-1))
    if rope is not None:
        cos, sin = rope
        rot = lambda t: t * cos + torch.cat([-t[..., D // 2:], t[..., :D // 2]], -1) * sin  # noqa: E731
        q, k = rot(q), rot(k)
    scores = q @ k.transpose(-1, -2) / math.sqrt(D)  # (B, H, T, S)
    if causal:
        scores = scores.masked_fill(~torch.ones(T, k.shape[2], dtype=torch.bool).tril(), float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    y = scores.softmax(-1) @ v
    return attn.proj(y.transpose(1, 2).reshape(B, T, C))


@pytest.fixture
def attn():
    torch.manual_seed(0)
    return Attention(32, 4).eval()


def test_matches_handwritten_reference(attn):
    x = torch.randn(2, 7, 32)
    assert torch.allclose(attn(x), reference(attn, x), atol=1e-5)
    assert torch.allclose(attn(x, is_causal=True), reference(attn, x, causal=True), atol=1e-5)


def test_causal_output_ignores_future_tokens(attn):
    x = torch.randn(1, 6, 32)
    y = attn(x, is_causal=True)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(1, 2, 32)
    y2 = attn(x2, is_causal=True)
    assert torch.allclose(y[:, :4], y2[:, :4], atol=1e-6)
    assert not torch.allclose(y[:, 4:], y2[:, 4:])


def test_cache_equals_full_pass_token_by_token_and_in_chunks(attn):
    x = torch.randn(2, 9, 32)
    full = attn(x, is_causal=True)
    cache = KVCache(1, 16)
    steps = []
    for t in range(9):
        steps.append(attn(x[:, t:t + 1], cache=cache))
        cache.advance(1)
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    cache = KVCache(1, 16)  # prefill 5, then a chunk of 4 that needs an explicit causal mask
    a = attn(x[:, :5], is_causal=True, cache=cache)
    cache.advance(5)
    b = attn(x[:, 5:], attn_mask=causal_mask(4, 9), cache=cache)
    assert torch.allclose(torch.cat([a, b], 1), full, atol=1e-5)


def test_padding_mask_hides_padded_keys(attn):
    x = torch.randn(2, 5, 32)
    keep = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    mask = combine(padding_mask(keep))
    y = attn(x, attn_mask=mask)
    assert torch.allclose(y, reference(attn, x, mask=padding_mask(keep)), atol=1e-5)
    x2 = x.clone()
    x2[0, 3:] = 100.0  # changing padded positions must not change the real ones
    assert torch.allclose(attn(x2, attn_mask=mask)[0, :3], y[0, :3], atol=1e-5)


def test_rotary_inside_attention_matches_reference():
    torch.manual_seed(1)
    attn = Attention(32, 4).eval()
    rope = Rotary(8, 32)(torch.arange(6)[None])
    x = torch.randn(1, 6, 32)
    assert torch.allclose(attn(x, is_causal=True, rope=rope), reference(attn, x, causal=True, rope=rope), atol=1e-5)


def test_cross_attention_with_different_memory_width_and_cache():
    torch.manual_seed(2)
    attn = Attention(32, 4, cross=True, kv_dim=48).eval()
    x, mem = torch.randn(2, 3, 32), torch.randn(2, 5, 48)
    keep = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    mask = padding_mask(keep)
    y = attn(x, memory_mask=mask, memory=mem)
    assert y.shape == (2, 3, 32)
    assert torch.allclose(y, reference(attn, x, memory=mem, mask=mask), atol=1e-5)
    cache = KVCache(1, 8)
    attn(x[:, :1], memory_mask=mask, memory=mem, cache=cache)
    assert cache.cross[0] is not None and cache.cross[0][0].shape == (2, 4, 5, 8)
    # the cached encoder keys/values are reused: the memory argument is not projected again
    again = attn(x, memory_mask=mask, memory=torch.zeros_like(mem), cache=cache)
    assert torch.allclose(again, y, atol=1e-6)


def test_cross_attention_without_memory_and_bad_width_raise():
    with pytest.raises(ValueError, match="memory"):
        Attention(32, 4, cross=True)(torch.randn(1, 2, 32))
    with pytest.raises(ValueError, match="not divisible"):
        Attention(30, 4)


def test_dropout_only_in_training():
    torch.manual_seed(3)
    attn = Attention(32, 4, dropout=0.5)
    x = torch.randn(2, 6, 32)
    attn.eval()
    assert torch.equal(attn(x), attn(x))
    attn.train()
    assert not torch.allclose(attn(x), attn(x))


def test_fixed_memory_projects_cross_keys_values_once_per_memory_tensor():
    from lingvis.nn.attention import Attention, fixed_memory

    torch.manual_seed(0)
    att = Attention(24, 4, cross=True).eval()
    calls = []
    att.kv.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    x, mem, other = torch.randn(2, 5, 24), torch.randn(2, 7, 24), torch.randn(2, 3, 24)
    with torch.no_grad():
        want, want_other = att(x, memory=mem), att(x, memory=other)
        calls.clear()
        with fixed_memory():
            got = [att(x + i, memory=mem) for i in range(3)]  # the same memory on every call: projected once
            got_other = att(x, memory=other)  # another memory tensor: its own projection
            assert len(calls) == 2
            with torch.enable_grad():
                att(x, memory=mem)  # with gradients: no memo
            assert len(calls) == 3
        att(x, memory=mem)  # outside: projected again
        assert len(calls) == 4
    torch.testing.assert_close(got[0], want)
    torch.testing.assert_close(got_other, want_other)
    with torch.no_grad():
        torch.testing.assert_close(got[2], att(x + 2, memory=mem))


@pytest.mark.parametrize("kw", [dict(n_kv_heads=2), dict(bias=False, qk_norm="rmsnorm"), dict(head_dim=6)])
@pytest.mark.parametrize("T", [1, 2, 13])
def test_project_kv_last_q_is_project_qkv_with_the_last_query(kw, T):
    torch.manual_seed(0)
    a = Attention(20, 4, **kw).eval()
    for p in a.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(3, T, 20)
    with torch.no_grad():
        q, k, v = a.project_qkv(x)
        lq, lk, lv = a.project_kv_last_q(x)
    assert lq.shape == (3, 4, 1, a.head_dim) and lk.shape == k.shape and lv.shape == v.shape
    torch.testing.assert_close(lq, q[:, :, -1:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lk, k, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lv, v, rtol=1e-5, atol=1e-5)
