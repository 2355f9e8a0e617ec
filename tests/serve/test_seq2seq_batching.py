"""The translation engine: batched rows give exactly what one-at-a-time `Seq2Seq.generate` gives (greedy with
per-row limits, beam search n-best, seeded sampling); cancellation, failures and the queue bound."""
import threading

import pytest
import torch

import lingvis
from lingvis.generate import SamplingConfig
from lingvis.serve.errors import QueueFull
from lingvis.serve.seq2seq_batching import BeamSettings, Seq2SeqEngine, TranslationSpec
from lingvis.tasks.seq2seq import cut_at_eos

V, EOS, PAD, START = 40, 1, 0, 2
EOS_BIAS = 1.0


class Collector:
    def __init__(self, expected: int, on_token=None):
        self.tokens, self.finish, self.errors = {}, {}, {}
        self.expected, self.on_token = expected, on_token
        self.done = threading.Event()

    def sink(self, events):
        for e in events:
            if e.token is not None:
                self.tokens.setdefault(e.index, []).append(e.token)
                if self.on_token:
                    self.on_token(e)
            if e.finish is not None:
                self.finish[e.index], self.errors[e.index] = e.finish, e.error
        if len(self.finish) >= self.expected:
            self.done.set()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = lingvis.build("transformer-nano", vocab_size=V, pad_id=PAD, eos_id=EOS, decoder_start_id=START,
                      final_logits_bias=True).eval()
    with torch.no_grad():  # large random weights (as transformers' init_std=0.3): outputs depend on the source
        for p in m.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
        m.final_logits_bias.normal_()
        m.final_logits_bias[EOS] += EOS_BIAS  # eos likely: rows end at different steps
    return m


def sources(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, V, (int(k),), generator=g).tolist() + [EOS]
            for k in torch.randint(2, 12, (n,), generator=g)]


def reference(model, src, **kw):
    """One sentence alone through the library: generated ids before eos, and whether eos came."""
    out = model.generate(torch.tensor([src]), **kw)  # (R, 1 + N)
    return [(row[:row.index(EOS)], True) if EOS in row else (row, False) for row in out[:, 1:].tolist()]


def run(engine, submissions):
    """Submit every (specs, collector) before the engine starts, so the first batch sees them all."""
    for specs, col in submissions:
        engine.submit(specs, col.sink)
    engine.start()
    try:
        for _, col in submissions:
            assert col.done.wait(60)
    finally:
        engine.close()


def test_greedy_rows_with_their_own_limits_share_one_batch(model):
    srcs, limits = sources(5), [20, 3, 12, 1, 30]
    cols = [Collector(1) for _ in srcs]
    engine = Seq2SeqEngine(model, max_batch=8, max_queue=16)
    run(engine, [([TranslationSpec(s, SamplingConfig(max_new_tokens=m, eos_ids=[EOS]))], c)
                 for s, m, c in zip(srcs, limits, cols)])
    assert engine.batch_sizes == {5: 1} and engine.stats()["batches"] == 1
    finishes = set()
    for s, m, c in zip(srcs, limits, cols):
        (want, ended), = reference(model, s, max_new_tokens=m)
        assert c.tokens.get(0, []) == want
        assert c.finish[0] == ("stop" if ended else "length")
        finishes.add(c.finish[0])
    assert finishes == {"stop", "length"}


def test_beam_groups_give_the_n_best_of_generate(model):
    srcs = sources(3, seed=2)
    beam = BeamSettings(num_beams=4, length_penalty=0.7, early_stopping=False)
    cfg = SamplingConfig(max_new_tokens=15, eos_ids=[EOS])
    cols = [Collector(3) for _ in srcs]
    engine = Seq2SeqEngine(model, max_batch=16, max_queue=16)
    run(engine, [([TranslationSpec(s, cfg, beam, group=0) for _ in range(3)], c) for s, c in zip(srcs, cols)])
    assert engine.batch_sizes == {12: 1}  # 3 sentences x 4 beams in one search
    for s, c in zip(srcs, cols):
        want = reference(model, s, num_beams=4, max_new_tokens=15, num_return_sequences=3, length_penalty=0.7)
        assert [c.tokens.get(j, []) for j in range(3)] == [w for w, _ in want]
        assert [c.finish[j] for j in range(3)] == ["stop" if e else "length" for _, e in want]


def test_max_batch_splits_and_keys_keep_settings_apart(model):
    srcs = sources(4, seed=3)
    greedy = SamplingConfig(max_new_tokens=8, eos_ids=[EOS])
    hot = SamplingConfig(max_new_tokens=8, eos_ids=[EOS], temperature=0.9, seed=5)
    cols = [Collector(1) for _ in range(5)]
    engine = Seq2SeqEngine(model, max_batch=2, max_queue=16)
    run(engine, [([TranslationSpec(s, greedy)], c) for s, c in zip(srcs, cols)] + [([TranslationSpec(srcs[0], hot)],
                                                                                    cols[4])])
    assert engine.batch_sizes == {2: 2, 1: 1}  # greedy rows two by two, the sampled row on its own


def test_seeded_sampling_reproduces_and_matches_generate(model):
    src = sources(1, seed=4)[0]
    cfg = SamplingConfig(max_new_tokens=10, eos_ids=[EOS], temperature=1.2, top_k=10, seed=11)
    outs = []
    for _ in range(2):
        col = Collector(2)
        run(Seq2SeqEngine(model), [([TranslationSpec(src, cfg), TranslationSpec(src, cfg)], col)])
        outs.append([col.tokens.get(j, []) for j in range(2)])
    assert outs[0] == outs[1]
    want = model.generate(torch.tensor([src, src]), max_new_tokens=10, temperature=1.2, top_k=10, seed=11)
    assert outs[0] == [row[1:] for row in cut_at_eos(want, EOS)]


def test_cancel_mid_stream_ends_only_that_row(model):
    srcs = sources(2, seed=5)
    cfg = SamplingConfig(max_new_tokens=30, eos_ids=[EOS], repetition_penalty=1.0)
    engine = Seq2SeqEngine(model, max_queue=8)
    tickets = []
    col = Collector(2, on_token=lambda e: e.index == 0 and tickets[0].cancel(0))
    with torch.no_grad():  # no eos at all: both rows would run to 30 tokens
        saved = model.final_logits_bias[EOS].item()
        model.final_logits_bias[EOS] = -50.0
    try:
        tickets.append(engine.submit([TranslationSpec(s, cfg) for s in srcs], col.sink))
        engine.start()
        assert col.done.wait(60)
    finally:
        engine.close()
        with torch.no_grad():
            model.final_logits_bias[EOS] = saved
    assert col.finish == {0: "cancelled", 1: "length"}
    assert len(col.tokens[0]) <= 2 and len(col.tokens[1]) == 30


def test_a_failing_batch_fails_its_rows_and_the_engine_goes_on(model, monkeypatch):
    src = sources(1, seed=6)[0]
    cfg = SamplingConfig(max_new_tokens=4, eos_ids=[EOS])
    engine = Seq2SeqEngine(model, max_queue=2).start()
    try:
        with monkeypatch.context() as m:
            m.setattr(model, "encode", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
            col = Collector(1)
            engine.submit([TranslationSpec(src, cfg)], col.sink)
            assert col.done.wait(60)
        assert col.finish[0] == "error" and "boom" in col.errors[0]
        ok = Collector(1)
        engine.submit([TranslationSpec(src, cfg)], ok.sink)
        assert ok.done.wait(60) and ok.finish[0] in ("stop", "length")
        assert engine.stats()["errors"] == 1
    finally:
        engine.close()
    idle = Seq2SeqEngine(model, max_queue=2)  # not started: nothing leaves the queue
    idle.submit([TranslationSpec(src, cfg)] * 2, lambda events: None)
    with pytest.raises(QueueFull):
        idle.submit([TranslationSpec(src, cfg)], lambda events: None)
    with pytest.raises(ValueError, match="source tokens exceed"):
        idle.submit([TranslationSpec(src * 40, cfg)], lambda events: None)
