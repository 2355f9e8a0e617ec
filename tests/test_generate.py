"""Token-level decoding: KV cache == uncached, batching == one by one, sampling filters, context limits."""
import pytest
import torch

import lingvis
from lingvis.generate import SamplingConfig, generate_ids, pad_left, pick, process_logits

V = 37


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return lingvis.build("gpt-nano", vocab_size=V, block_size=32).eval()


def prompt(n, seed=0, batch=1):
    return torch.randint(1, V, (batch, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kw", [
    {},
    {"temperature": 0.9, "top_k": 12, "seed": 3},
    {"temperature": 1.2, "top_p": 0.8, "repetition_penalty": 1.3, "seed": 7},
], ids=["greedy", "top-k", "top-p+penalty"])
def test_kv_cache_equals_uncached(model, kw):
    x = prompt(5, batch=2)
    a = model.generate(x, max_new_tokens=20, use_cache=True, **kw)
    b = model.generate(x, max_new_tokens=20, use_cache=False, **kw)
    assert a.shape == (2, 25)
    assert torch.equal(a, b)
    assert torch.equal(a[:, :5], x)


def test_seed_reproduces_and_differs(model):
    x = prompt(4)
    a = model.generate(x, max_new_tokens=15, temperature=1.0, seed=1)
    assert torch.equal(a, model.generate(x, max_new_tokens=15, temperature=1.0, seed=1))
    assert not torch.equal(a, model.generate(x, max_new_tokens=15, temperature=1.0, seed=2))


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("penalty", [1.0, 1.5])
def test_batched_prompts_of_different_lengths_equal_each_alone(model, use_cache, penalty):
    prompts = [prompt(n, seed=n)[0].tolist() for n in (3, 9, 6)]
    alone = [generate_ids(model, torch.tensor([p]), max_new_tokens=12, repetition_penalty=penalty)[0, len(p):]
             for p in prompts]
    # pad with a token the shortest prompt goes on to generate but does not contain: were the padding
    # counted as "seen", the penalty would change that row's continuation
    pad = next(t for t in alone[0].tolist() if t not in prompts[0])
    ids, mask = pad_left(prompts, pad_id=pad)
    out = generate_ids(model, ids, mask, use_cache=use_cache, max_new_tokens=12, repetition_penalty=penalty)
    for i in range(3):
        assert out[i, ids.shape[1]:].tolist() == alone[i].tolist()


def test_eos_ends_rows_and_finished_rows_repeat_eos(model):
    x = prompt(4, batch=3)
    free = model.generate(x, max_new_tokens=10)
    eos = int(free[0, 6])  # the 3rd token row 0 generates becomes "eos"
    out = model.generate(x, max_new_tokens=10, eos_id=eos)
    row0 = out[0, 4:].tolist()
    first = row0.index(eos)
    assert first <= 2 and all(t == eos for t in row0[first:])
    for r in range(3):  # rows keep their free-running tokens up to their first eos
        new = free[r, 4:].tolist()
        stop = new.index(eos) + 1 if eos in new else len(new)
        assert out[r, 4:4 + stop].tolist() == new[:stop][:out.shape[1] - 4]
    only = model.generate(x[:1], max_new_tokens=10, eos_id=eos)
    assert only.shape[1] == 4 + first + 1  # every row finished: no more columns


class CountingModel:
    """Wraps a model to record the (batch, length) of every forward call."""

    def __init__(self, model):
        self.model, self.calls = model, []
        self.context_length, self.row_independent, self.new_cache = model.context_length, True, model.new_cache

    def __call__(self, input_ids, **kw):
        self.calls.append(tuple(input_ids.shape))
        return self.model(input_ids, **kw)


def test_padded_prompts_prefill_without_padding_compute(model):
    prompts = [prompt(n, seed=n)[0].tolist() for n in (3, 9, 6, 9)]
    ids, mask = pad_left(prompts)
    counting = CountingModel(model)
    out = generate_ids(counting, ids, mask, max_new_tokens=5)
    prefill = [c for c in counting.calls if c[1] > 1]
    assert sorted(prefill) == [(1, 3), (1, 6), (2, 9)]  # grouped by real length, no padded positions
    assert sum(b * t for b, t in prefill) == sum(len(p) for p in prompts)
    for i, p in enumerate(prompts):  # the same tokens as each prompt alone
        alone = generate_ids(model, torch.tensor([p]), max_new_tokens=5)[0, len(p):]
        assert out[i, ids.shape[1]:].tolist() == alone.tolist()


@pytest.mark.parametrize("padded", [False, True])
def test_finished_rows_leave_the_batch(model, padded):
    prompts = [prompt(n if padded else 5, seed=s)[0].tolist() for s, n in enumerate((4, 7, 5, 6))]
    ids, mask = pad_left(prompts)
    free = generate_ids(model, ids, mask, max_new_tokens=12)
    eos = int(free[1, ids.shape[1] + 2])  # row 1 finishes at its 3rd new token (or earlier)
    counting = CountingModel(model)
    out = generate_ids(counting, ids, mask, max_new_tokens=12, eos_ids=[eos])
    batches = [b for b, t in counting.calls if t == 1]
    assert min(batches) < len(prompts)  # later steps ran without the finished rows
    for r in range(len(prompts)):  # live rows unchanged; finished rows repeat eos
        new, got = free[r, ids.shape[1]:].tolist(), out[r, ids.shape[1]:].tolist()
        stop = new.index(eos) + 1 if eos in new else len(new)
        assert got[:stop] == new[:stop][:len(got)]
        assert all(t == eos for t in got[stop:])


def test_cache_write_rows_places_keys_at_offset():
    from lingvis.nn.cache import KVCache

    part, full = KVCache(1, 4), KVCache(1, 6)
    k = torch.randn(2, 3, 4, 5)
    part.update(0, k, -k)
    part.advance(4)
    full.write_rows(part, torch.tensor([2, 0]), 1, batch_size=3)
    assert full.k[0].shape == (3, 3, 6, 5)
    assert torch.equal(full.k[0][2, :, 1:5], k[0]) and torch.equal(full.v[0][0, :, 1:5], -k[1])
    assert not full.k[0][1].any() and not full.k[0][:, :, 0].any()
    with pytest.raises(ValueError, match="overflow"):
        full.write_rows(part, torch.tensor([0]), 3, batch_size=3)


def test_context_overflow_error_names_both_numbers(model):
    with pytest.raises(ValueError, match=r"prompt of 20 tokens \+ max_new_tokens 13 = 33 exceeds the model's "
                                         r"context length 32"):
        model.generate(prompt(20), max_new_tokens=13)
    with pytest.raises(ValueError, match="prompt of 32 tokens leaves no room in the model's context length 32"):
        generate_ids(model, prompt(32), max_new_tokens=1, overflow="slide")


def test_overflow_slide_keeps_generating_past_the_context(model):
    x = prompt(10)
    short = model.generate(x, max_new_tokens=22)  # exactly fills the context
    long = generate_ids(model, x, max_new_tokens=40, overflow="slide")
    assert long.shape == (1, 50)
    assert torch.equal(long[:, :32], short)  # identical until the window has to move
    # the first token after the slide is the greedy continuation of the last 3/4 context window
    window = long[:, 32 - 24:32]
    with torch.no_grad():
        assert int(model(window)[0, -1].argmax()) == int(long[0, 32])
    uncached = generate_ids(model, x, max_new_tokens=40, overflow="slide", use_cache=False)
    assert uncached.shape == (1, 50) and torch.equal(uncached[:, :33], long[:, :33])


def test_slide_with_padded_batch_is_refused(model):
    ids, mask = pad_left([[1, 2], [3, 4, 5]])
    with pytest.raises(ValueError, match="equal length"):
        generate_ids(model, ids, mask, max_new_tokens=40, overflow="slide")


def test_zero_new_tokens_returns_the_prompt(model):
    x = prompt(5)
    assert torch.equal(model.generate(x, max_new_tokens=0), x)


def test_generate_restores_training_mode(model):
    model.train()
    model.generate(prompt(3), max_new_tokens=2)
    assert model.training
    model.eval()


# ---- logits processing ---------------------------------------------------------------------------

def test_greedy_ignores_filters():
    logits = torch.tensor([[0.1, 2.0, -1.0, 1.9]])
    cfg = SamplingConfig(temperature=0.0, top_k=1)
    assert int(pick(process_logits(logits, None, cfg), cfg, None)) == 1


def test_top_k_keeps_exactly_k_and_samples_only_them():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0, -1.0]])
    cfg = SamplingConfig(temperature=1.0, top_k=2)
    out = process_logits(logits, None, cfg)
    assert torch.isfinite(out).sum() == 2 and torch.isfinite(out[0, [1, 3]]).all()
    gen = torch.Generator().manual_seed(0)
    draws = {int(pick(out, cfg, gen)) for _ in range(200)}
    assert draws == {1, 3}


def test_top_p_keeps_smallest_prefix_reaching_p():
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3]])
    logits = probs.log()
    kept = lambda p: torch.isfinite(process_logits(logits, None, SamplingConfig(temperature=1.0, top_p=p)))  # noqa
    assert kept(0.7)[0].tolist() == [False, True, False, True]       # 0.5 + 0.3 reaches 0.7
    assert kept(0.5)[0].tolist() == [False, True, False, False]      # 0.5 alone reaches 0.5
    assert kept(0.96)[0].tolist() == [True, True, True, True]
    assert kept(1.0).all()


def test_temperature_sharpens_distribution():
    logits = torch.tensor([[1.0, 2.0, 0.5]])
    hot = process_logits(logits, None, SamplingConfig(temperature=2.0)).softmax(-1)
    cold = process_logits(logits, None, SamplingConfig(temperature=0.5)).softmax(-1)
    assert cold[0, 1] > logits.softmax(-1)[0, 1] > hot[0, 1]


def test_repetition_penalty_divides_positive_and_multiplies_negative_seen_logits():
    logits = torch.tensor([[2.0, -1.0, 3.0, 0.5]])
    seen = torch.tensor([[0, 1, 1]])
    out = process_logits(logits, seen, SamplingConfig(repetition_penalty=2.0))
    assert out[0].tolist() == [1.0, -2.0, 3.0, 0.5]


def test_repetition_penalty_reduces_repeats(model):
    x = prompt(4)
    plain = model.generate(x, max_new_tokens=25)[0, 4:].tolist()
    penalised = model.generate(x, max_new_tokens=25, repetition_penalty=5.0)[0, 4:].tolist()
    assert len(set(penalised)) > len(set(plain))


@pytest.mark.parametrize("bad, msg", [
    ({"temperature": -1.0}, "temperature"), ({"top_k": 0}, "top_k"), ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"), ({"repetition_penalty": 0.0}, "repetition_penalty"),
    ({"max_new_tokens": -1}, "max_new_tokens"), ({"overflow": "wrap"}, "overflow"),
])
def test_invalid_sampling_settings(model, bad, msg):
    with pytest.raises(ValueError, match=msg):
        generate_ids(model, prompt(3), **{"max_new_tokens": 2, **bad})


def test_pad_left():
    ids, mask = pad_left([[5, 6], [7, 8, 9]], pad_id=1)
    assert ids.tolist() == [[1, 5, 6], [7, 8, 9]] and mask.tolist() == [[0, 1, 1], [1, 1, 1]]
    with pytest.raises(ValueError, match="at least one token"):
        pad_left([[1], []])
