"""The fused one-token decode step (lingvis/decode_step.py): logits as `model.forward`'s, greedy tokens
identical to the general path, for GPT-2-style and Llama-style models, batches, int8 and the compiled step."""
import copy
import importlib

import pytest
import torch

from lingvis import decode_step
from lingvis.decode_step import FusedStep, StaticStep, compiled_cache_len, step_for, supports
from lingvis.generate import generate_ids
from lingvis.models.gpt import GPT, GPTConfig
from lingvis.quant import fbgemm_available, quantize_int8

SHAPES = {
    "gpt2": dict(vocab_size=97, block_size=64, n_layer=3, n_head=3, n_embd=36),
    "llama": dict(vocab_size=101, block_size=64, n_layer=2, n_head=6, n_kv_head=2, n_embd=48, head_dim=10,
                  norm="rmsnorm", activation="swiglu", position="rotary", bias=False, tie_embeddings=False,
                  mlp_hidden=70),
    "qwen3": dict(vocab_size=89, block_size=64, n_layer=2, n_head=4, n_kv_head=1, n_embd=32, norm="rmsnorm",
                  activation="swiglu", position="rotary", bias=False, qkv_bias=True, qk_norm=True,
                  rope_scaling={"rope_type": "yarn", "factor": 2.0}),
    "sinusoidal": dict(vocab_size=53, block_size=64, n_layer=2, n_head=2, n_embd=22, position="sinusoidal",
                       activation="relu"),
}


def build(name: str, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**SHAPES[name])).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(6)  # sharper logits: greedy choices far from ties
    return model


def general_path(monkeypatch):
    monkeypatch.setattr(importlib.import_module("lingvis.generate"), "step_for", lambda *a, **k: None)


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("cls", [FusedStep, StaticStep])
def test_step_logits_equal_forward(name, cls):
    model = build(name)
    ids = torch.randint(0, model.config.vocab_size, (2, 7))
    ref_cache, cache = model.new_cache(2, 20), model.new_cache(2, 20)
    with torch.no_grad():
        model(ids, cache=ref_cache)
        model(ids, cache=cache)
        step = cls(model, cache)
        nxt = ids[:, -1]
        for _ in range(6):
            want = model(nxt[:, None], cache=ref_cache, last_only=True)[:, -1]  # (B, V)
            got = step(nxt)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            nxt = want.argmax(-1)
    assert cache.length == ref_cache.length == 13


@pytest.mark.parametrize("name", SHAPES)
def test_greedy_tokens_identical_to_general_path(name, monkeypatch):
    model = build(name)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, model.config.vocab_size, (1, int(n)), generator=g)
               for n in torch.randint(1, 20, (12,), generator=g)]
    fast = [model.generate(p, max_new_tokens=24) for p in prompts]
    general_path(monkeypatch)
    for p, f in zip(prompts, fast):
        assert torch.equal(model.generate(p, max_new_tokens=24), f)


def test_batch_with_eos_and_sampling_identical_to_general_path(monkeypatch):
    model = build("llama")
    ids = torch.randint(0, 101, (5, 9), generator=torch.Generator().manual_seed(3))
    eos = int(model.generate(ids[:1], max_new_tokens=3)[0, -1])  # a token row 0 will produce: rows end early
    kw = dict(max_new_tokens=20, eos_id=eos)
    fast = model.generate(ids, **kw), model.generate(ids, temperature=0.8, top_k=20, seed=5, **kw)
    general_path(monkeypatch)
    assert torch.equal(model.generate(ids, **kw), fast[0])
    assert torch.equal(model.generate(ids, temperature=0.8, top_k=20, seed=5, **kw), fast[1])


def test_sliding_past_the_context_identical_to_general_path(monkeypatch):
    model = build("gpt2")
    ids = torch.randint(0, 97, (1, 30))
    # context 64: the window slides, the step follows the new cache
    fast = generate_ids(model.eval(), ids, max_new_tokens=60, overflow="slide")
    general_path(monkeypatch)
    assert torch.equal(generate_ids(model, ids, max_new_tokens=60, overflow="slide"), fast)


@pytest.mark.skipif(not fbgemm_available(), reason="W8A8 needs fbgemm")
@pytest.mark.parametrize("activations", ["float", "int8"])
def test_int8_model_takes_the_fused_step(activations, monkeypatch):
    model = quantize_int8(copy.deepcopy(build("llama")), activations=activations)
    cache = model.new_cache(1, 8)
    assert isinstance(step_for(model, cache), FusedStep)
    prompts = [torch.randint(0, 101, (1, n), generator=torch.Generator().manual_seed(n)) for n in (3, 8, 13)]
    fast = [model.generate(p, max_new_tokens=16) for p in prompts]
    general_path(monkeypatch)
    for p, f in zip(prompts, fast):
        assert torch.equal(model.generate(p, max_new_tokens=16), f)


def test_unsupported_models_fall_back(monkeypatch):
    window = GPT(GPTConfig(**SHAPES["llama"], sliding_window=4)).eval()
    assert not supports(window, window.new_cache(1, 32))  # a ring cache
    assert not supports(window, window.new_cache(1, 32, ring=False))  # the window is narrower than the cache
    assert not supports(build("gpt2").train(), build("gpt2").new_cache(1, 8))
    shift = GPT(GPTConfig(**SHAPES["gpt2"], token_shift=2)).eval()
    assert step_for(shift, shift.new_cache(1, 8)) is None
    model = build("gpt2")
    assert step_for(model, None) is None
    monkeypatch.setenv("LINGVIS_FUSED_STEP", "0")
    assert step_for(model, model.new_cache(1, 8)) is None
    with pytest.raises(ValueError, match="not supported"):
        FusedStep(shift, shift.new_cache(1, 8))


def test_step_refuses_a_full_cache():
    model = build("gpt2")
    cache = model.new_cache(1, 4)
    with torch.no_grad():
        model(torch.zeros(1, 4, dtype=torch.long), cache=cache)
        with pytest.raises(ValueError, match="KV cache overflow"):
            FusedStep(model, cache)(torch.zeros(1, dtype=torch.long))


def test_compiled_cache_len_rounds_up_within_the_context():
    assert compiled_cache_len(1, 1024) == 256
    assert compiled_cache_len(257, 1024) == 512
    assert compiled_cache_len(1000, 600) == 600


def test_compiled_step_matches_eager_and_is_reused(monkeypatch):
    """One compiled case (inductor, CPU): a tiny model so compiling takes seconds."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=67, block_size=32, n_layer=1, n_head=2, n_embd=16)).eval()
    prompts = [torch.randint(0, 67, (1, n), generator=torch.Generator().manual_seed(n)) for n in (2, 5, 9)]
    eager = [model.generate(p, max_new_tokens=12) for p in prompts]
    built = []
    real = decode_step.StaticStep

    def counting(*a, **k):
        built.append(1)
        return real(*a, **k)

    monkeypatch.setattr(decode_step, "StaticStep", counting)
    for p, e in zip(prompts, eager):
        assert torch.equal(model.generate(p, max_new_tokens=12, compile=True), e)
    assert len(built) == 1  # every prompt length shares the one compiled step (cache rounded to the context)


@pytest.mark.skipif(not fbgemm_available(), reason="W8A8 needs fbgemm")
def test_compile_of_a_w8a8_model_falls_back_to_the_eager_step():
    """fbgemm's packed int8 weights cannot be traced by torch.compile: the step warns and runs eagerly."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=67, block_size=32, n_layer=1, n_head=2, n_embd=16)).eval()
    model = quantize_int8(model, activations="int8")
    p = torch.randint(0, 67, (1, 5))
    eager = model.generate(p, max_new_tokens=10)
    with pytest.warns(UserWarning, match="eager fused step"):
        assert torch.equal(model.generate(p, max_new_tokens=10, compile=True), eager)


needs_native = pytest.mark.skipif(not importlib.import_module("lingvis.native").available(),
                                  reason="native kernels did not build")


@needs_native
@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_native_kernels_keep_logits_and_greedy_tokens(name, monkeypatch):
    """One row: the fused step's linears run in the native kernels; logits equal `model.forward` (torch's
    kernels) to 1e-5 and greedy tokens equal the general path's on many prompts."""
    model = build(name, seed=3)
    step = FusedStep(model, model.new_cache(1, 8))
    assert type(step.direct[0][1]).__name__ == "function" and "kernel" in step.direct[0][1].__code__.co_freevars
    V = model.config.vocab_size
    prompts = [torch.randint(0, V, (1, n), generator=torch.Generator().manual_seed(n)) for n in range(1, 21)]
    with torch.no_grad():
        for p in prompts[:4]:
            ref, cache = model.new_cache(1, 40), model.new_cache(1, 40)
            model(p, cache=ref), model(p, cache=cache)
            step, nxt = FusedStep(model, cache), p[:, -1]
            for _ in range(8):
                want = model(nxt[:, None], cache=ref, last_only=True)[:, -1]
                torch.testing.assert_close(step(nxt), want, rtol=1e-5, atol=1e-5)
                nxt = want.argmax(-1)
    fast = [generate_ids(model, p, max_new_tokens=16) for p in prompts]
    general_path(monkeypatch)
    assert all(torch.equal(generate_ids(model, p, max_new_tokens=16), f) for p, f in zip(prompts, fast))


@needs_native
@pytest.mark.skipif(not fbgemm_available(), reason="W8A8 needs fbgemm")
@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_native_w8a8_greedy_equals_fbgemm(name, monkeypatch):
    model = quantize_int8(build(name, seed=4), activations="int8")
    V = model.config.vocab_size
    prompts = [torch.randint(0, V, (1, n), generator=torch.Generator().manual_seed(n)) for n in range(1, 17)]
    fast = [model.generate(p, max_new_tokens=16) for p in prompts]
    monkeypatch.setenv("LINGVIS_NATIVE", "0")  # fbgemm's kernel everywhere
    assert step_for(model, model.new_cache(1, 8)).direct[0][1] is model.blocks[0].attn.qkv
    assert all(torch.equal(model.generate(p, max_new_tokens=16), f) for p, f in zip(prompts, fast))


def _fresh_logits(model, ids, nxt):
    """Logits of one native step built from nothing (the prepared parts dropped first)."""
    decode_step._PREPARED.pop(model, None)
    cache = model.new_cache(1, 20)
    model(ids, cache=cache)
    return FusedStep(model, cache)(nxt)


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_prepared_step_parts_follow_new_caches_and_changed_weights(name):
    """The weight-side parts of a step (modules, direct calls, the native whole step's descriptions) are built once
    per model and reused; a new cache gets its own pointers, and a weight updated in place or replaced rebuilds them."""
    model = build(name)
    ids = torch.randint(0, model.config.vocab_size, (1, 5))
    nxt = ids[:, -1]
    with torch.no_grad():
        cache_a, cache_b = model.new_cache(1, 20), model.new_cache(1, 20)
        model(ids, cache=cache_a)
        step_a = FusedStep(model, cache_a)
        if step_a.whole is None:
            pytest.skip("the native library did not build")
        model(ids[:, :3], cache=cache_b)  # a different prefix: the second step must read ITS cache
        step_b = FusedStep(model, cache_b)
        assert step_b.direct is step_a.direct and step_b.whole is not step_a.whole  # shared parts, own cache
        ref_a, ref_b = model.new_cache(1, 20), model.new_cache(1, 20)
        model(ids, cache=ref_a)
        model(ids[:, :3], cache=ref_b)
        want_a = model(nxt[:, None], cache=ref_a, last_only=True)[:, -1]
        want_b = model(nxt[:, None], cache=ref_b, last_only=True)[:, -1]
        got_b, got_a = step_b(nxt), step_a(nxt)  # b first: a's cache must not have been written by b
        torch.testing.assert_close(got_a, want_a, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got_b, want_b, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(got_a, got_b)
        torch.testing.assert_close(cache_a.k[0][:, :, 5], ref_a.k[0][:, :, 5])
        torch.testing.assert_close(cache_b.k[0][:, :, 3], ref_b.k[0][:, :, 3])

        before = _fresh_logits(model, ids, nxt)
        model.blocks[0].mlp.fc.weight.mul_(1.5)  # in place: same pointer, a new version
        cache = model.new_cache(1, 20)
        model(ids, cache=cache)
        got = FusedStep(model, cache)(nxt)
        want = model(nxt[:, None], cache=ref_a_like(model, ids), last_only=True)[:, -1]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(got, before)

        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().flip(0).clone())  # replaced
        cache = model.new_cache(1, 20)
        model(ids, cache=cache)
        got = FusedStep(model, cache)(nxt)
        want = model(nxt[:, None], cache=ref_a_like(model, ids), last_only=True)[:, -1]
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got, _fresh_logits(model, ids, nxt), rtol=0, atol=0)


def ref_a_like(model, ids):
    cache = model.new_cache(1, 20)
    model(ids, cache=cache)
    return cache


@pytest.mark.parametrize("name", SHAPES)
def test_token_step_equals_the_batch_one_step_bit_for_bit(name):
    """`FusedStep.token(int)` (the draft models' lean one-token path) gives `__call__`'s logits exactly and
    writes the same cache columns."""
    model = build(name)
    ids = torch.randint(0, model.config.vocab_size, (1, 6))
    with torch.no_grad():
        caches = model.new_cache(1, 20), model.new_cache(1, 20)
        for c in caches:
            model(ids, cache=c)
        plain, lean = FusedStep(model, caches[0]), FusedStep(model, caches[1])
        t = int(ids[0, -1])
        for _ in range(5):
            want = plain(torch.tensor([t]))[0]  # (V,)
            got = lean.token(t)
            assert torch.equal(got, want)
            t = int(want.argmax())
        assert caches[0].length == caches[1].length == 11
        assert all(torch.equal(a, b) for a, b in zip(caches[0].k, caches[1].k))


def test_step_of_a_model_built_under_inference_mode():
    """Inference tensors have no version counter: the prepared parts key on their pointers alone."""
    with torch.inference_mode():
        model = build("llama")
        ids = torch.randint(0, model.config.vocab_size, (1, 4))
        ref, cache = model.new_cache(1, 12), model.new_cache(1, 12)
        model(ids, cache=ref), model(ids, cache=cache)
        want = model(ids[:, -1:], cache=ref, last_only=True)[:, -1]
        torch.testing.assert_close(step_for(model, cache)(ids[:, -1]), want, rtol=1e-5, atol=1e-5)
