"""M consecutive positions of one sequence in one native call (lingvis/native/step.c `lv_step_rows_f32` via
`native.WholeStep.rows` / `decode_step.FusedStep.rows`), which speculative decoding verifies its drafts with: each
row's logits and KV-cache column equal M one-token whole steps' bit for bit (odd shapes, GQA, RoPE, q/k norms,
LayerNorm / RMSNorm, gated MLPs, int8 weights; 1 and 2 threads); speculative greedy output identical to plain
greedy, with the verify pass and the draft model's steps on the native path; clean errors and fallbacks."""
import pytest
import torch

from lingvis import native
from lingvis.decode_step import FusedStep
from lingvis.generate import SamplingConfig
from lingvis.quant import fbgemm_available, quantize_int8
from lingvis.speculative import stream_speculative

from .test_step import SHAPES, build

pytestmark = pytest.mark.skipif(not native.available(), reason="native kernels did not build (no C compiler?)")

SPLITS = (1, 5, 9, 2, 3, 4, 16, 1)  # row counts per call: 1, odd, the 3-row groups' remainders 0 / 1 / 2, 16


def run_both(model, n_prompt: int = 7, seed: int = 2):
    """(logits of 41 one-token steps, logits of the same 41 tokens fed as `rows` calls of SPLITS rows, the two
    caches)."""
    V = model.config.vocab_size
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (1, n_prompt), generator=g)
    toks = torch.randint(0, V, (sum(SPLITS),), generator=g)
    c1, c2 = model.new_cache(1, 60), model.new_cache(1, 60)
    with torch.no_grad():
        model(ids, cache=c1)
        model(ids, cache=c2)
        one, many = FusedStep(model, c1), FusedStep(model, c2)
        assert one.whole is not None and many.whole is not None, native.whole_step_reason(model, c1)
        want = torch.cat([one(toks[i:i + 1]) for i in range(len(toks))])  # (41, V)
        got, i = [], 0
        for M in SPLITS:
            got.append(many.rows(toks[i:i + M]))
            i += M
    return want, torch.cat(got), c1, c2


def assert_same(want, got, c1, c2):
    assert got.shape == want.shape
    assert torch.equal(got, want), (got - want).abs().max()  # the same products in the same order: bit for bit
    assert c1.length == c2.length == 7 + sum(SPLITS)
    for i in range(len(c1.k)):  # every row's key (normed, rotated) and value landed in its column
        assert torch.equal(c2.k[i][:, :, :c1.length], c1.k[i][:, :, :c1.length])
        assert torch.equal(c2.v[i][:, :, :c1.length], c1.v[i][:, :, :c1.length])
        assert not c2.k[i][:, :, c1.length:].any()  # and nothing past them


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", SHAPES)
def test_rows_equal_one_token_steps(name, threads):
    torch.set_num_threads(threads)
    want, got, c1, c2 = run_both(build(name))
    assert_same(want, got, c1, c2)


def test_rows_match_the_forward_pass():
    """Against model.forward over the same tokens (the general path): float rounding only."""
    model = build("qwen3")
    ids = torch.randint(0, model.config.vocab_size, (1, 14), generator=torch.Generator().manual_seed(6))
    cache = model.new_cache(1, 30)
    with torch.no_grad():
        ref = model(ids)[0]  # (14, V)
        model(ids[:, :5], cache=cache)
        got = FusedStep(model, cache).rows(ids[0, 5:])
    torch.testing.assert_close(got, ref[5:], rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not fbgemm_available(), reason="W8A8 needs fbgemm")
@pytest.mark.parametrize("activations", ["int8", "float"])
@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen3"])
def test_int8_rows_equal_one_token_steps(name, activations):
    torch.set_num_threads(2)
    want, got, c1, c2 = run_both(quantize_int8(build(name), activations=activations))
    assert_same(want, got, c1, c2)


def test_errors_and_fallbacks(monkeypatch):
    model = build("llama")
    cache = model.new_cache(1, 20)
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]), cache=cache)
    step = FusedStep(model, cache)
    whole = step.whole
    with pytest.raises(ValueError, match="1 <= M <= 64"):
        whole.rows(torch.zeros(0, 46), 3, None, None)
    with pytest.raises(ValueError, match="1 <= M <= 64"):
        whole.rows(torch.zeros(65, 46), 3, None, None)
    with pytest.raises(ValueError, match="fp32"):
        whole.rows(torch.zeros(2, 46, dtype=torch.float64), 3, None, None)
    with pytest.raises(ValueError, match=r"positions 18..20 outside the cache's 20 columns"):
        whole.rows(torch.zeros(3, 46), 18, torch.zeros(3, 10), torch.zeros(3, 10))
    with pytest.raises(ValueError, match=r"cos/sin must be \(3, 10\)"):
        whole.rows(torch.zeros(3, 46), 3, torch.zeros(2, 10), torch.zeros(2, 10))
    with pytest.raises(ValueError, match="KV cache overflow"):
        with torch.no_grad():
            step.rows(torch.arange(18))
    assert cache.length == 3  # nothing written by the refused calls
    monkeypatch.setenv("LINGVIS_NATIVE_STEP", "0")
    assert FusedStep(model, cache).rows(torch.tensor([4, 5])) is None  # no whole step: the caller's forward
    assert cache.length == 3
    monkeypatch.delenv("LINGVIS_NATIVE_STEP")
    assert step.rows(torch.tensor([4, 5])) is None  # grad mode on, weights need gradients: torch's path


@pytest.mark.parametrize("name", ["gpt2", "llama", "qwen3"])
def test_speculative_greedy_is_plain_greedy_on_the_native_path(name, monkeypatch):
    """Prompt lookup and a draft model, k = 1..8, on many prompts with repeated spans: the same tokens as plain
    greedy decoding, with every verify pass a native `rows` call and the draft's steps native one-token steps."""
    model = build(name, seed=1)
    for p in model.parameters():
        p.requires_grad_(False)
    V = model.config.vocab_size
    draft_cfg = dict(SHAPES["gpt2"], vocab_size=V, n_layer=1)
    torch.manual_seed(9)
    from lingvis.models.gpt import GPT, GPTConfig
    draft = GPT(GPTConfig(**draft_cfg)).eval()
    calls = {"rows": 0, "forward": 0}
    rows = FusedStep.rows

    def counted(self, ids):
        out = rows(self, ids)
        calls["rows" if out is not None else "forward"] += 1
        return out
    monkeypatch.setattr(FusedStep, "rows", counted)
    g = torch.Generator().manual_seed(11)
    kept = 0
    for i in range(10):
        base = torch.randint(0, V, (1, 3 + i % 6), generator=g)
        p = torch.cat([base, torch.randint(0, V, (1, i % 3), generator=g), base, base[:, :2]], dim=1)
        plain = model.generate(p, max_new_tokens=28)[0, p.shape[1]:].tolist()
        for spec in ("prompt-lookup", draft):
            stats = {}
            got = [int(t) for t in stream_speculative(model, p, SamplingConfig(max_new_tokens=28), spec,
                                                      num_draft_tokens=1 + i % 8, stats=stats)]
            assert got == plain, (spec, i)
            kept += stats["accepted"]
    assert kept > 0
    assert calls["rows"] > 0 and calls["forward"] == 0
