"""The continuous-batching engine gives exactly what one-at-a-time decoding gives."""
import threading
import time

import pytest
import torch

import lingvis
from lingvis.generate import SamplingConfig, generate_ids
from lingvis.serve.batching import Engine
from lingvis.serve.errors import QueueFull
from lingvis.serve.sequences import SeqSpec


class Collector:
    def __init__(self):
        self.tokens, self.finish, self.prompt = {}, {}, {}
        self.done = threading.Event()
        self.expected = 0

    def sink(self, events):
        for e in events:
            if e.token is not None:
                self.tokens.setdefault(e.index, []).append(e.token)
            if e.prompt_logprobs is not None:
                self.prompt[e.index] = e.prompt_logprobs
            if e.finish is not None:
                self.finish[e.index] = e.finish
        if len(self.finish) >= self.expected:
            self.done.set()


def run_staggered(model, jobs, max_batch=8, gap=0.002):
    """Submit (prompt, SamplingConfig) jobs a little apart so they join a running batch."""
    eng = Engine(model, max_batch=max_batch, max_queue=64).start()
    cols = []
    try:
        for prompt, cfg in jobs:
            c = Collector()
            c.expected = 1
            eng.submit([SeqSpec(prompt, cfg)], c.sink)
            cols.append(c)
            time.sleep(gap)
        for c in cols:
            assert c.done.wait(60)
        return [c.tokens.get(0, []) for c in cols], eng.stats()
    finally:
        eng.close()


@pytest.mark.parametrize("preset,shift", [("gpt-nano", 0), ("llama-micro", 0), ("llama-micro", 3)])
def test_staggered_greedy_equals_one_at_a_time(preset, shift):
    torch.manual_seed(0)
    model = lingvis.build(preset, vocab_size=50, block_size=64, n_layer=2, n_embd=64, n_head=4,
                          token_shift=shift).eval()  # shift: the cache's embedding layer joins and leaves too
    if shift:  # large enough that the neighbours decide tokens
        for p in model.shift.parameters():
            torch.nn.init.normal_(p, std=0.5)
    g = torch.Generator().manual_seed(1)
    jobs = [(torch.randint(0, 50, (n,), generator=g).tolist(), SamplingConfig(max_new_tokens=m))
            for n, m in [(3, 20), (9, 12), (1, 30), (15, 25), (4, 5), (20, 40), (2, 1), (6, 33)]]
    got, st = run_staggered(model, jobs)
    for (prompt, cfg), out in zip(jobs, got):
        ref = generate_ids(model, torch.tensor([prompt]), max_new_tokens=cfg.max_new_tokens)[0, len(prompt):]
        assert out == ref.tolist()
    assert st["mean_batch"] > 1  # rows really were decoded together


def test_seeded_sampling_equals_one_at_a_time():
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=40, block_size=64).eval()
    cfgs = [dict(temperature=0.8, seed=3), dict(temperature=1.2, top_k=5, seed=4),
            dict(temperature=0.7, top_p=0.8, seed=5), dict(temperature=0, repetition_penalty=1.3),
            dict(temperature=1.0, repetition_penalty=1.2, seed=6)]
    jobs = [([1 + i, 2, 3 + i], SamplingConfig(max_new_tokens=15, **kw)) for i, kw in enumerate(cfgs)]
    got, _ = run_staggered(model, jobs, gap=0.0)
    for (prompt, cfg), out in zip(jobs, got):
        kw = {k: getattr(cfg, k) for k in ("temperature", "top_k", "top_p", "repetition_penalty", "seed")}
        ref = generate_ids(model, torch.tensor([prompt]), max_new_tokens=15, **kw)[0, len(prompt):]
        assert out == ref.tolist()


def test_rows_wait_for_room_near_the_context_end():
    """With prompt + max_new close to the context, new rows must wait for columns to free up."""
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=30, block_size=24).eval()
    jobs = [([i % 30] * (4 + i % 7), SamplingConfig(max_new_tokens=24 - (4 + i % 7) - i % 3)) for i in range(12)]
    got, _ = run_staggered(model, jobs, gap=0.001)
    for (prompt, cfg), out in zip(jobs, got):
        ref = generate_ids(model, torch.tensor([prompt]), max_new_tokens=cfg.max_new_tokens)[0, len(prompt):]
        assert out == ref.tolist()


def test_eos_stops_a_row_and_prompt_scores():
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=30, block_size=32).eval()
    prompt = [3, 1, 4, 1, 5]
    ref = generate_ids(model, torch.tensor([prompt]), max_new_tokens=10)[0, len(prompt):].tolist()
    eng = Engine(model).start()
    try:
        c = Collector()
        c.expected = 2
        eng.submit([SeqSpec(prompt, SamplingConfig(max_new_tokens=10, eos_ids=[ref[3]])),
                    SeqSpec(prompt, SamplingConfig(max_new_tokens=0), logprobs=2, prompt_logprobs=True)], c.sink)
        assert c.done.wait(30)
    finally:
        eng.close()
    assert c.tokens.get(0, []) == ref[:ref.index(ref[3])] and c.finish[0] == "stop"
    assert 1 not in c.tokens and c.finish[1] == "length"
    with torch.no_grad():
        lp = model(torch.tensor([prompt]))[0].log_softmax(-1)
    scores = c.prompt[1]
    assert scores[0] == (None, None)
    for t in range(1, len(prompt)):
        assert scores[t][0] == pytest.approx(lp[t - 1, prompt[t]].item(), abs=1e-5)
        assert [i for i, _ in scores[t][1]] == lp[t - 1].topk(2).indices.tolist()


def test_queue_bound_cancel_and_validation():
    model = lingvis.build("gpt-nano", vocab_size=30, block_size=32).eval()
    eng = Engine(model, max_batch=1, max_queue=2)  # not started: submissions stay queued
    cfg = SamplingConfig(max_new_tokens=4)
    t1 = eng.submit([SeqSpec([1, 2], cfg)], lambda ev: None)
    eng.submit([SeqSpec([1, 2], cfg)], lambda ev: None)
    with pytest.raises(QueueFull):
        eng.submit([SeqSpec([1], cfg)], lambda ev: None)
    t1.cancel()
    assert eng.stats()["waiting"] == 1 and eng.stats()["cancelled"] == 1
    eng.submit([SeqSpec([1], cfg)], lambda ev: None)
    with pytest.raises(ValueError, match="30 prompt tokens \\+ 4 new tokens exceed the context length 32"):
        eng.submit([SeqSpec([1] * 30, cfg)], lambda ev: None)
    with pytest.raises(ValueError, match="empty"):
        eng.submit([SeqSpec([], cfg)], lambda ev: None)
    with pytest.raises(ValueError, match="3 sequences in one request exceed the queue bound 2"):
        eng.submit([SeqSpec([1], cfg)] * 3, lambda ev: None)


class Flaky(torch.nn.Module):
    """A GPT whose decode steps fail while `broken` is set."""

    def __init__(self, gpt):
        super().__init__()
        self.gpt, self.broken = gpt, False
        self.context_length, self.new_cache = gpt.context_length, gpt.new_cache

    def forward(self, input_ids, **kw):
        if self.broken and input_ids.shape[1] == 1:
            raise RuntimeError("simulated device failure")
        return self.gpt(input_ids, **kw)


def test_a_failed_step_fails_its_rows_and_the_engine_keeps_serving():
    torch.manual_seed(0)
    model = Flaky(lingvis.build("gpt-nano", vocab_size=30, block_size=32).eval())
    eng = Engine(model).start()
    try:
        model.broken = True
        bad = Collector()
        bad.expected = 1
        eng.submit([SeqSpec([1, 2, 3], SamplingConfig(max_new_tokens=5))], bad.sink)
        assert bad.done.wait(30) and bad.finish[0] == "error"
        model.broken = False
        good = Collector()
        good.expected = 1
        eng.submit([SeqSpec([1, 2, 3], SamplingConfig(max_new_tokens=5))], good.sink)
        assert good.done.wait(30) and good.finish[0] == "length" and len(good.tokens[0]) == 5
        assert eng.stats()["errors"] == 1 and eng.stats()["active"] == 0
    finally:
        eng.close()


def test_prompts_arriving_together_prefill_without_padding():
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=50, block_size=64).eval()
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(0, 50, (n,), generator=g).tolist() for n in (3, 11, 7, 11)]
    shapes = []
    hook = model.register_forward_pre_hook(lambda mod, args: shapes.append(tuple(args[0].shape)))
    eng = Engine(model, max_batch=8, max_queue=64)
    c = Collector()
    c.expected = len(prompts)
    eng.submit([SeqSpec(p, SamplingConfig(max_new_tokens=6)) for p in prompts], c.sink)  # queued before start
    eng.start()
    try:
        assert c.done.wait(60)
    finally:
        eng.close()
        hook.remove()
    prefill = sorted(s for s in shapes if s[1] > 1)
    assert prefill == [(1, 3), (1, 7), (2, 11)]  # one call per prompt length, no padded positions
    for i, p in enumerate(prompts):
        ref = generate_ids(model, torch.tensor([p]), max_new_tokens=6)[0, len(p):]
        assert c.tokens[i] == ref.tolist()
