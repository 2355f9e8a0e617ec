"""The native fp32 attention kernel (native/attention.c) against `F.scaled_dot_product_attention`: odd lengths,
head dims 8..200, causal, grouped heads, strided views and the output layout; what it refuses."""
import pytest
import torch
import torch.nn.functional as F

from lingvis.native.attention import built_with_avx512, native_attention, supports

pytestmark = pytest.mark.skipif(not built_with_avx512(), reason="native kernels not built with AVX-512")


def _qkv(B, H, Lq, Lk, D, Hkv=None, seed=0, sharp=1.0):
    g = torch.Generator().manual_seed(seed)
    Hkv = Hkv or H
    q = torch.randn(B, H, Lq, D, generator=g) * sharp
    return q, torch.randn(B, Hkv, Lk, D, generator=g) * sharp, torch.randn(B, Hkv, Lk, D, generator=g)


def _check(y, want):
    assert y.shape == want.shape
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("B,H,Lq,Lk,D", [(1, 1, 1, 1, 8), (2, 3, 7, 7, 64), (1, 2, 197, 197, 64),
                                         (1, 2, 197, 197, 80), (2, 2, 100, 33, 8), (1, 1, 5, 300, 32),
                                         (1, 2, 37, 37, 200), (1, 1, 65, 129, 128), (1, 2, 300, 9, 24),
                                         (2, 1, 31, 401, 3), (1, 2, 9, 1, 8)])
def test_matches_sdpa(B, H, Lq, Lk, D):
    q, k, v = _qkv(B, H, Lq, Lk, D, sharp=2.0)  # sharper softmax than unit-scaled activations
    _check(native_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


def test_long_sequence_and_scale():
    q, k, v = _qkv(1, 1, 50, 1570, 64, seed=1)  # several key blocks, a partial last one
    _check(native_attention(q, k, v, scale=0.3), F.scaled_dot_product_attention(q, k, v, scale=0.3))
    q, k, v = _qkv(1, 1, 3, 3, 8, seed=2)
    q[0, 0, 1, :] = 30.0  # one row far sharper than the rest: the running max is what keeps it finite
    _check(native_attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("Lq,Lk,D", [(1, 1, 64), (7, 7, 8), (200, 200, 64), (9, 20, 80), (20, 9, 16)])
def test_causal_matches_sdpa(Lq, Lk, D):
    q, k, v = _qkv(2, 2, Lq, Lk, D, seed=3)
    _check(native_attention(q, k, v, causal=True), F.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_grouped_heads():
    q, k, v = _qkv(2, 6, 33, 41, 64, Hkv=2, seed=4)
    want = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    _check(native_attention(q, k, v), want)
    _check(native_attention(q, k, v, causal=True), F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                                   enable_gqa=True))


@pytest.mark.parametrize("B,L,H,D", [(2, 23, 3, 16), (1, 300, 8, 64), (1, 300, 8, 8)])  # 300 x 8 x 64: copied values
def test_strided_views_and_output_layout(B, L, H, D):
    g = torch.Generator().manual_seed(5)
    qkv = torch.randn(B, L, 3, H, D, generator=g)  # a fused projection's output
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # (B, H, L, D) views, rows 3*H*D apart
    y = native_attention(q, k, v)
    _check(y, F.scaled_dot_product_attention(q, k, v))
    assert torch.equal(native_attention(q, k, v, checked=True), y)  # the caller checked: the same call
    assert y.transpose(1, 2).is_contiguous()  # (B, L, H, D) underneath: the output projection reads it as is
    t = torch.randn(L, D, 2, generator=g)[..., 0].expand(1, 1, L, D)  # last dimension strided: copied first
    _check(native_attention(t, t, t), F.scaled_dot_product_attention(t, t, t))


def test_refuses_what_it_does_not_compute():
    q, k, v = _qkv(1, 2, 4, 4, 8)
    assert supports(q, k, v)
    assert not supports(q.double(), k.double(), v.double())
    assert not supports(q, k[:, :, :0], v[:, :, :0])  # no keys
    assert not supports(q, k[..., :4], v[..., :4])  # head dims differ
    assert not supports(*_qkv(1, 1, 4, 4, 300))  # head dim over 256
    assert not supports(*_qkv(1, 3, 4, 4, 8, Hkv=2))  # 3 heads do not group over 2
    qg = q.clone().requires_grad_()
    assert not supports(qg, k, v)
    with torch.no_grad():
        assert supports(qg, k, v)
    with pytest.raises(ValueError, match="fp32"):
        native_attention(q.double(), k.double(), v.double())


def test_same_result_on_any_thread_count():
    q, k, v = _qkv(2, 3, 45, 61, 64, seed=6)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = native_attention(q, k, v)
        torch.set_num_threads(2)
        two = native_attention(q, k, v)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(one, two)  # every query tile is computed by one thread, in the same order


def test_cpu_without_avx512_keeps_sdpa(monkeypatch):
    """The kernel has only an AVX-512 path: on other CPUs `supports` says no, so every caller stays on SDPA."""
    import types

    from lingvis.native import attention as mod
    from lingvis.nn.fast_attention import attention, choose_kernel
    q, k, v = _qkv(1, 2, 9, 9, 16)
    monkeypatch.setattr(mod, "load", lambda: types.SimpleNamespace(lv_features=lambda: 4))  # OpenMP, no AVX-512
    monkeypatch.setenv("LINGVIS_ATTENTION", "native")
    assert not supports(q, k, v) and choose_kernel(q, k, v=v) == "sdpa"
    torch.testing.assert_close(attention(q, k, v), F.scaled_dot_product_attention(q, k, v))



@pytest.mark.parametrize("Lk, causal", [(23, False), (401, False), (37, True), (500, True)])
def test_every_score_far_below_zero(Lk, causal):
    """All scores near -156 (a shared offset from one head-dim column, which the softmax ignores): the row max the
    scores kernel keeps must leave out the zero-padded key columns, whose score is 0 (a max of 0 would underflow
    every probability: NaN). fp32 scores of that size keep ~5 digits, hence the float64 reference at 1e-3."""
    q, k, v = _qkv(1, 2, 19, Lk, 16)
    q[..., -1], k[..., -1] = 25.0, -25.0  # q . k = -625 + the rest; scale 1/4
    want = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), is_causal=causal).float()
    y = native_attention(q, k, v, causal=causal)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, want, rtol=1e-3, atol=1e-3)
