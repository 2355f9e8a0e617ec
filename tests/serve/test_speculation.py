"""Speculative decoding in the serving engine: a row decoding alone verifies proposed tokens in one forward
pass, with the tokens plain batched greedy decoding gives."""
import pytest
import torch

import lingvis
from lingvis.generate import SamplingConfig, generate_ids
from lingvis.serve import ServeConfig
from lingvis.serve.batching import Engine
from lingvis.serve.sequences import SeqSpec
from lingvis.serve.speculation import Speculation

from .conftest import openai_client, start_server
from .test_batching import Collector


def small_lm(vocab=12, layers=2, width=64, seed=0, preset="gpt-nano"):
    torch.manual_seed(seed)
    return lingvis.build(preset, vocab_size=vocab, block_size=96, n_layer=layers, n_embd=width, n_head=4).eval()


def run_together(model, jobs, speculation):
    """Submit every (prompt, cfg) job before the engine starts: they prefill together, then rows finish one by
    one and the last ones decode alone."""
    eng = Engine(model, max_batch=8, speculation=speculation)
    cols = []
    for prompt, cfg in jobs:
        c = Collector()
        c.expected = 1
        eng.submit([SeqSpec(prompt, cfg)], c.sink)
        cols.append(c)
    eng.start()
    try:
        for c in cols:
            assert c.done.wait(60)
        return [c.tokens.get(0, []) for c in cols], [c.finish[0] for c in cols], eng.stats()
    finally:
        eng.close()


def plain(model, prompt, n, **kw):
    return generate_ids(model, torch.tensor([prompt]), max_new_tokens=n, **kw)[0, len(prompt):].tolist()


@pytest.mark.parametrize("preset", ["gpt-nano", "llama-micro"])
def test_prompt_lookup_rows_give_plain_greedy_tokens(preset):
    model = small_lm(preset=preset)
    # a long-prompt row that ends early and short-prompt rows that go on alone: the lone row's columns start
    # after the first row's prompt, so the engine compacts the cache before speculating
    jobs = [([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4], SamplingConfig(max_new_tokens=6)),
            ([1, 2, 1, 2, 1], SamplingConfig(max_new_tokens=50)),
            ([7, 7, 2], SamplingConfig(max_new_tokens=35))]
    got, finish, st = run_together(model, jobs, Speculation("prompt-lookup"))
    for (prompt, cfg), out in zip(jobs, got):
        assert out == plain(model, prompt, cfg.max_new_tokens)
    assert finish == ["length"] * 3
    assert st["speculative_steps"] > 0 and st["draft_accepted"] > 0
    assert st["steps"] < sum(cfg.max_new_tokens for _, cfg in jobs) - len(jobs)  # fewer passes than tokens


def test_draft_model_rows_and_eos():
    model, draft = small_lm(), small_lm(layers=1, width=32, seed=1)
    prompt = [2, 5, 2, 5, 2]
    ref = plain(model, prompt, 40)
    eos = ref[25]
    jobs = [(prompt, SamplingConfig(max_new_tokens=40)), ([9, 8, 7], SamplingConfig(max_new_tokens=30)),
            (prompt, SamplingConfig(max_new_tokens=40, eos_ids=[eos]))]
    got, finish, st = run_together(model, jobs, Speculation(draft, draft_tokens=3))
    assert got[0] == ref and got[1] == plain(model, [9, 8, 7], 30)
    assert got[2] == ref[:ref.index(eos)] and finish[2] == "stop"
    assert st["speculative_steps"] > 0 and st["draft_proposed"] > 0


def test_sampled_and_penalised_rows():
    model = small_lm()
    jobs = [([1, 2, 3], SamplingConfig(max_new_tokens=30, temperature=0, repetition_penalty=1.3)),
            ([4, 5, 4, 5], SamplingConfig(max_new_tokens=60, temperature=0.8, top_k=5, seed=7))]
    got, finish, st = run_together(model, jobs, Speculation("prompt-lookup", draft_tokens=4))
    assert got[0] == plain(model, [1, 2, 3], 30, repetition_penalty=1.3)
    assert len(got[1]) == 60 and all(0 <= t < 12 for t in got[1]) and finish == ["length", "length"]
    again, _, _ = run_together(model, jobs, Speculation("prompt-lookup", draft_tokens=4))
    assert again[1] == got[1]  # seeded: the same tokens every time
    assert st["speculative_steps"] > 0


def test_rows_with_logprobs_take_plain_steps():
    model = small_lm()
    eng = Engine(model, speculation=Speculation("prompt-lookup"))
    c = Collector()
    c.expected = 1
    eng.submit([SeqSpec([1, 2, 1, 2], SamplingConfig(max_new_tokens=12), logprobs=1)], c.sink)
    eng.start()
    try:
        assert c.done.wait(30)
    finally:
        eng.close()
    assert c.tokens[0] == plain(model, [1, 2, 1, 2], 12) and eng.stats()["speculative_steps"] == 0


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="draft_tokens must be >= 1"):
        Speculation("prompt-lookup", draft_tokens=0)
    with pytest.raises(ValueError, match="vocabulary \\(20\\) differs from the model's \\(12\\)"):
        Engine(small_lm(), speculation=Speculation(small_lm(vocab=20)))
    with pytest.raises(ValueError, match="speculative must be 'prompt-lookup'"):
        ServeConfig(speculative="ngram", device="cpu").validate()
    with pytest.raises(ValueError, match="--draft-tokens goes with --draft or --speculative"):
        ServeConfig(draft_tokens=3, device="cpu").validate()
    with pytest.raises(ValueError, match="alternatives"):
        ServeConfig(speculative="prompt-lookup", draft=tmp_path, device="cpu").validate()
    with pytest.raises(FileNotFoundError, match="--draft .*missing does not exist"):
        ServeConfig(draft=tmp_path / "missing", device="cpu").validate()


def test_server_with_a_draft_model_matches_plain_greedy(lm_dir, tmp_path):
    model, tok = lingvis.load(lm_dir), lingvis.load_tokenizer(lm_dir)
    torch.manual_seed(1)
    draft = lingvis.build("gpt-nano", vocab_size=tok.vocab_size, block_size=1024, n_layer=1, n_embd=32, n_head=4)
    draft_dir = lingvis.save(draft, tmp_path / "draft", tokenizer=tok)
    prompt = "To be, or not to be, to be, or"
    with start_server([lm_dir], draft=draft_dir, draft_tokens=3) as srv:
        client = openai_client(srv)
        out = client.completions.create(model=lm_dir.name, prompt=prompt, max_tokens=24, temperature=0)
        streamed = "".join(ch.choices[0].text for ch in client.completions.create(
            model=lm_dir.name, prompt=prompt, max_tokens=24, temperature=0, stream=True))
    ids = tok.encode(prompt)
    assert out.choices[0].text == tok.decode(plain(model, ids, 24)) == streamed


@pytest.mark.parametrize("preset", ["gpt-nano", "llama-micro"])
@pytest.mark.parametrize("speculation", [None, "prompt-lookup"])
def test_a_lone_row_takes_the_batch1_decode_step(preset, speculation, monkeypatch):
    """A row decoding alone (from the start, or once the others finished) runs `generate`'s batch-1 decode step
    (decode_step.FusedStep, the native whole step where it builds) instead of the batched forward, with
    `generate`'s tokens; two rows together keep the batched forward."""
    from lingvis.decode_step import FusedStep

    model = small_lm(preset=preset)
    calls = {"lone": 0, "batched": 0}
    lone, forward = FusedStep.__call__, type(model).forward

    def counted_lone(self, ids):
        calls["lone"] += 1
        return lone(self, ids)

    def counted_forward(self, *a, **kw):
        x = a[0] if a else kw.get("input_ids")
        if x is not None and x.dim() == 2 and x.shape == (2, 1):
            calls["batched"] += 1
        return forward(self, *a, **kw)
    monkeypatch.setattr(FusedStep, "__call__", counted_lone)
    monkeypatch.setattr(type(model), "forward", counted_forward)
    spec = None if speculation is None else Speculation(speculation, draft_tokens=3)
    want = plain(model, [2, 7, 1, 8, 2, 8], 30)
    calls.update(lone=0, batched=0)
    got, _, _ = run_together(model, [([2, 7, 1, 8, 2, 8], SamplingConfig(max_new_tokens=30))], spec)
    assert got[0] == want
    if speculation is None:
        assert calls["lone"] == 29 and calls["batched"] == 0  # every step after the prefill's token
    jobs = [([3, 1, 4, 1, 5, 9, 2, 6, 5, 3], SamplingConfig(max_new_tokens=5)),
            ([1, 2, 3], SamplingConfig(max_new_tokens=40))]
    want = [plain(model, p, cfg.max_new_tokens) for p, cfg in jobs]
    calls.update(lone=0, batched=0)
    got, _, _ = run_together(model, jobs, spec)
    assert got == want
    assert calls["batched"] == 4  # two rows: the batched forward until the first row ends
    if speculation is None:
        assert calls["lone"] == 40 - 5
