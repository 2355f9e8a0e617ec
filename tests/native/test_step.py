"""The whole batch-1 decode step as one native call (lingvis/native/step.c via native.WholeStep, taken by
decode_step.FusedStep): logits within 1e-5 of `model.forward`, the same KV cache, greedy tokens identical to the
general path, on tiny random GPT-2-, Llama-, Qwen3-style and other configs with odd shapes; 1 and 2 threads;
int8 weights (W8A8, weight-only) in the same call; clean fallbacks (two rows, LINGVIS_NATIVE_STEP=0, autograd)."""
import importlib

import pytest
import torch

from lingvis import native
from lingvis.decode_step import FusedStep
from lingvis.models.gpt import GPT, GPTConfig
from lingvis.quant import fbgemm_available, quantize_int8

pytestmark = pytest.mark.skipif(not native.available(), reason="native kernels did not build (no C compiler?)")

SHAPES = {  # odd widths: tails of every SIMD loop (C, head_dim, hidden, vocab not multiples of 8 or 16)
    "gpt2": dict(vocab_size=97, block_size=64, n_layer=3, n_head=3, n_embd=36, activation="gelu_tanh"),
    "llama": dict(vocab_size=101, block_size=64, n_layer=2, n_head=6, n_kv_head=2, n_embd=46, head_dim=10,
                  norm="rmsnorm", activation="swiglu", position="rotary", bias=False, tie_embeddings=False,
                  mlp_hidden=70),
    "qwen3": dict(vocab_size=89, block_size=64, n_layer=2, n_head=4, n_kv_head=1, n_embd=32, head_dim=18,
                  norm="rmsnorm", activation="swiglu", position="rotary", bias=False, qkv_bias=True, qk_norm=True,
                  rope_scaling={"rope_type": "yarn", "factor": 2.0}),
    "sinusoidal": dict(vocab_size=53, block_size=64, n_layer=2, n_head=2, n_embd=22, position="sinusoidal",
                       activation="relu"),
    "geglu": dict(vocab_size=61, block_size=64, n_layer=2, n_head=5, n_embd=35, activation="geglu", mlp_hidden=33,
                  attn_out_bias=False),
    "quick_gelu": dict(vocab_size=40, block_size=64, n_layer=2, n_head=2, n_embd=24, activation="quick_gelu"),
    "relu2": dict(vocab_size=40, block_size=64, n_layer=2, n_head=1, n_embd=17, head_dim=17, activation="relu2"),
    "gelu": dict(vocab_size=40, block_size=64, n_layer=1, n_head=2, n_embd=40, activation="gelu"),
    "silu": dict(vocab_size=40, block_size=64, n_layer=1, n_head=2, n_embd=40, activation="silu", norm="rmsnorm"),
}


def build(name: str, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**SHAPES[name])).eval()
    with torch.no_grad():
        for p in model.parameters():  # norms and biases away from 1 / 0: their pointers must be the right ones
            if p.dim() == 1:
                p.add_(0.3 * torch.randn_like(p))
        model.lm_head.weight.mul_(6)  # sharper logits: greedy choices far from ties
    return model


def prefilled(model, ids):
    """(reference cache, cache, the whole native step over the cache), both caches prefilled with `ids`."""
    ref_cache, cache = model.new_cache(1, 30), model.new_cache(1, 30)
    with torch.no_grad():
        model(ids, cache=ref_cache)
        model(ids, cache=cache)
        step = FusedStep(model, cache)
    assert step.whole is not None, native.whole_step_reason(model, cache)
    return ref_cache, cache, step


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", SHAPES)
def test_whole_step_equals_forward(name, threads):
    torch.set_num_threads(threads)
    model = build(name)
    ids = torch.randint(0, model.config.vocab_size, (1, 7), generator=torch.Generator().manual_seed(2))
    ref_cache, cache, step = prefilled(model, ids)
    with torch.no_grad():
        nxt = ids[:, -1]
        for _ in range(20):
            want = model(nxt[:, None], cache=ref_cache, last_only=True)[:, -1]  # (1, V)
            got = step(nxt)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            nxt = want.argmax(-1)
    assert cache.length == ref_cache.length == 27
    for i in range(len(cache.k)):  # the new keys/values landed in the model's own cache, rotated and normed
        torch.testing.assert_close(cache.k[i][:, :, :27], ref_cache.k[i][:, :, :27], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cache.v[i][:, :, :27], ref_cache.v[i][:, :, :27], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen3"])
def test_greedy_identical_to_general_path(name, monkeypatch):
    model = build(name, seed=1)
    g = torch.Generator().manual_seed(4)
    prompts = [torch.randint(0, model.config.vocab_size, (1, int(n)), generator=g)
               for n in torch.randint(1, 20, (16,), generator=g)]
    fast = [model.generate(p, max_new_tokens=30) for p in prompts]
    monkeypatch.setattr(importlib.import_module("lingvis.generate"), "step_for", lambda *a, **k: None)
    for p, f in zip(prompts, fast):
        assert torch.equal(model.generate(p, max_new_tokens=30), f)


@pytest.mark.skipif(not fbgemm_available(), reason="W8A8 needs fbgemm")
@pytest.mark.parametrize("activations", ["int8", "float"])
@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen3"])
def test_int8_whole_step(name, activations, monkeypatch):
    """int8 layers (W8A8 / weight-only) in the one native call: logits as the per-op native kernels' (the same
    integer products), greedy tokens identical to the general path."""
    model = quantize_int8(build(name), activations=activations)
    ids = torch.randint(0, model.config.vocab_size, (1, 5), generator=torch.Generator().manual_seed(3))
    ref_cache, cache, step = prefilled(model, ids)
    with torch.no_grad():
        monkeypatch.setenv("LINGVIS_NATIVE_STEP", "0")
        ref = FusedStep(model, ref_cache)
        assert ref.whole is None
        nxt = ids[:, -1]
        for _ in range(12):
            want = ref(nxt)  # (1, V)
            torch.testing.assert_close(step(nxt), want, rtol=1e-4, atol=1e-4)
            nxt = want.argmax(-1)
    monkeypatch.delenv("LINGVIS_NATIVE_STEP")
    g = torch.Generator().manual_seed(5)
    prompts = [torch.randint(0, model.config.vocab_size, (1, int(n)), generator=g) for n in (1, 4, 9, 17)]
    fast = [model.generate(p, max_new_tokens=20) for p in prompts]
    monkeypatch.setattr(importlib.import_module("lingvis.generate"), "step_for", lambda *a, **k: None)
    for p, f in zip(prompts, fast):
        assert torch.equal(model.generate(p, max_new_tokens=20), f)


def test_fallbacks(monkeypatch):
    model = build("llama")
    cache = model.new_cache(1, 16)
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]), cache=cache)
    assert FusedStep(model, cache).whole is not None
    assert FusedStep(model, cache, use_native=False).whole is None
    batch = model.new_cache(2, 16)
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3], [4, 5, 6]]), cache=batch)
    assert FusedStep(model, batch).whole is None  # two rows: the per-op path
    assert native.whole_step_reason(quantize_int8(build("llama")), cache) is None  # int8 layers: native too
    monkeypatch.setenv("LINGVIS_NATIVE_STEP", "0")
    assert FusedStep(model, cache).whole is None
    with pytest.raises(ValueError, match="WholeStep: the KV cache"):
        native.WholeStep(model, batch)
    whole = native.WholeStep(model, cache)
    with pytest.raises(ValueError, match="fp32"):
        whole(torch.zeros(46, dtype=torch.float64), 3, None, None)
    with pytest.raises(ValueError, match="outside the cache"):
        whole(torch.zeros(46), 16, None, None)


def test_autograd_keeps_the_torch_path():
    model = build("gpt2")
    cache = model.new_cache(1, 16)
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]), cache=cache)
    step = FusedStep(model, cache)
    assert step.whole is not None and not step.whole.usable()  # grad mode on, weights need gradients
    logits = step(torch.tensor([4]))
    assert logits.requires_grad  # computed by torch, so it can be differentiated
    with torch.no_grad():
        assert step.whole.usable()


@pytest.mark.skipif(not fbgemm_available(), reason="W8A8 needs fbgemm")
@pytest.mark.parametrize("threads", [1, 2])
def test_w8a8_interleaved_tiles_equal_the_row_major_ones(threads, monkeypatch):
    """Widths that are multiples of 64 take step.c's LV_W8A8_TILED (every full 8-row tile stored interleaved, the
    last partial tile row-major): the same integers, so the same logits as the row-major whole step and the per-op
    kernels, with row counts that leave partial tiles (qkv 6 x 16 + 2 x 2 x 16 = 160 rows: full; the head 101)."""
    torch.set_num_threads(threads)
    cfg = dict(vocab_size=101, block_size=64, n_layer=2, n_head=6, n_kv_head=2, n_embd=128, head_dim=16,
               norm="rmsnorm", activation="swiglu", position="rotary", bias=False, tie_embeddings=False,
               mlp_hidden=192)
    torch.manual_seed(3)
    model = quantize_int8(GPT(GPTConfig(**cfg)).eval(), activations="int8")
    ids = torch.randint(0, 101, (1, 6), generator=torch.Generator().manual_seed(4))
    outs = {}
    for mode, env in (("tiled", {}), ("row-major", {"LINGVIS_INT8_TILED": "0"}),
                      ("per op", {"LINGVIS_NATIVE_STEP": "0"})):
        for k, v in {"LINGVIS_INT8_TILED": "1", "LINGVIS_NATIVE_STEP": "1", **env}.items():
            monkeypatch.setenv(k, v)
        cache = model.new_cache(1, 30)
        with torch.no_grad():
            model(ids, cache=cache)
            step = FusedStep(model, cache)
            if mode != "per op":
                kinds = {step.whole.layers[0].qkv.kind, step.whole.layers[0].fc2.kind, step.whole.desc.head.kind}
                assert kinds == ({3} if mode == "tiled" else {1})
            nxt, got = ids[:, -1], []
            for _ in range(12):
                logits = step(nxt)
                got.append(logits)
                nxt = logits.argmax(-1)
        outs[mode] = torch.cat(got)
    torch.testing.assert_close(outs["tiled"], outs["row-major"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(outs["tiled"], outs["per op"], rtol=1e-4, atol=1e-4)
