"""nn/fast_attention.py: the native kernel or SDPA per measured (Lq bucket, Lk bucket, D, ...) key, forced by
LINGVIS_ATTENTION, SDPA for what the native kernel does not take; results equal SDPA's either way."""
import pytest
import torch
import torch.nn.functional as F

from lingvis.native.attention import built_with_avx512
from lingvis.nn import fast_attention
from lingvis.nn.fast_attention import AttentionChooser, attention, choose_kernel, measure


@pytest.fixture(autouse=True)
def _auto(monkeypatch):
    monkeypatch.delenv("LINGVIS_ATTENTION", raising=False)


def _qkv(B=2, H=2, L=9, D=8):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(B, H, L, D, generator=g) for _ in range(3)]


def test_chooser_measures_each_key_once():
    calls = []

    def timer(kernel, key):
        calls.append((kernel, key))
        return {"sdpa": 2.0, "native": 1.0}[kernel] if key[0] <= 64 else {"sdpa": 1.0, "native": 1.01}[kernel]

    c = AttentionChooser(timer=timer)
    q, k, v = _qkv(L=33)
    assert c.choose(q, k, v) == "native" and c.choose(q, k, v) == "native"
    assert len(calls) == 2  # one measurement of each kernel, then the cached decision
    q2, k2, v2 = _qkv(L=40)  # same bucket (33..64)
    assert c.choose(q2, k2, v2) == "native" and len(calls) == 2
    q3, k3, v3 = _qkv(L=100)
    assert c.choose(q3, k3, v3) == "sdpa"  # not faster by the margin
    assert c.choose(q, k, v, causal=True) == "native" and len(calls) == 6  # causal is its own key
    assert c.timings[c.key(q3, k3, False)] == {"sdpa": 1.0, "native": 1.01}


def test_env_forces_a_kernel(monkeypatch):
    c = AttentionChooser(timer=lambda kernel, key: pytest.fail("measured although forced"))
    q, k, v = _qkv()
    monkeypatch.setenv("LINGVIS_ATTENTION", "sdpa")
    assert c.choose(q, k, v) == "sdpa"
    monkeypatch.setenv("LINGVIS_ATTENTION", "native")
    assert c.choose(q, k, v) == "native"
    monkeypatch.setenv("LINGVIS_ATTENTION", "fast")
    with pytest.raises(ValueError, match="LINGVIS_ATTENTION"):
        c.choose(q, k, v)


@pytest.mark.parametrize("kernel", ["sdpa", "native"])
def test_attention_equals_sdpa_with_either_kernel(monkeypatch, kernel):
    if kernel == "native" and not built_with_avx512():
        pytest.skip("native kernels not built with AVX-512")
    monkeypatch.setenv("LINGVIS_ATTENTION", kernel)
    q, k, v = _qkv(B=2, H=4, L=21, D=64)
    torch.testing.assert_close(attention(q, k, v), F.scaled_dot_product_attention(q, k, v), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(attention(q, k, v, causal=True, scale=0.5),
                               F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.5),
                               rtol=1e-5, atol=1e-5)
    kg, vg = k[:, :2], v[:, :2]  # grouped heads
    torch.testing.assert_close(attention(q, kg, vg), F.scaled_dot_product_attention(q, kg, vg, enable_gqa=True),
                               rtol=1e-5, atol=1e-5)


def test_sdpa_for_what_the_kernel_does_not_take(monkeypatch):
    monkeypatch.setenv("LINGVIS_ATTENTION", "native")
    q, k, v = _qkv()
    assert choose_kernel(q.double(), k.double()) == "sdpa"
    qg = q.clone().requires_grad_()
    assert choose_kernel(qg, k) == "sdpa"
    y = attention(qg, k, v)  # autograd: SDPA, gradients flow
    y.sum().backward()
    assert qg.grad is not None and qg.grad.abs().sum() > 0
    monkeypatch.setattr(fast_attention, "supports", lambda q, k, v: False)  # e.g. no compiler: SDPA
    assert choose_kernel(q, k) == "sdpa"
    torch.testing.assert_close(attention(q, k, v), F.scaled_dot_product_attention(q, k, v))


def test_real_measurement_returns_both_timings():
    if not built_with_avx512():
        pytest.skip("native kernels not built with AVX-512")
    q, k, v = _qkv(B=3, H=2, L=40, D=16)
    times = measure(q, k, v, causal=False)
    assert set(times) == {"sdpa", "native"} and all(0 < t < 1 for t in times.values())


def test_sdpa_under_torch_compile(monkeypatch):
    monkeypatch.setenv("LINGVIS_ATTENTION", "native")
    q, k, v = _qkv()
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # what Dynamo reports while tracing
    assert choose_kernel(q, k) == "sdpa"


def test_forced_context_overrides_the_environment_and_restores(monkeypatch):
    from lingvis.nn.fast_attention import forced, forced_kernel
    monkeypatch.setenv("LINGVIS_ATTENTION", "native")
    q, k, v = _qkv()
    with forced("sdpa"):
        assert forced_kernel() == "sdpa" and choose_kernel(q, k, v=v) == "sdpa"
        torch.testing.assert_close(attention(q, k, v), F.scaled_dot_product_attention(q, k, v), rtol=0, atol=0)
    assert forced_kernel() == "native"
    with pytest.raises(ValueError, match="forced"):
        with forced("flash"):
            pass


def test_measured_sample_holds_a_head_per_thread():
    from lingvis.nn.fast_attention import MEASURE_FLOP, _sample

    L, D = 1568, 64  # one head: 1.5x MEASURE_FLOP
    assert 4 * L * L * D > MEASURE_FLOP
    q = k = v = torch.empty(1, 12, L, D)
    assert _sample(q, k, v)[0].shape == (1, 1, L, D)
    assert _sample(q, k, v, threads=2)[1].shape == (1, 2, L, D)
    assert _sample(q, k[:, :1], v[:, :1], threads=2)[1].shape == (1, 1, L, D)  # one kv head is all there is
    small = torch.empty(6, 2, 16, 8)  # small calls: whole batches, as before
    assert _sample(small, small, small, threads=2)[0].shape == (6, 2, 16, 8)
