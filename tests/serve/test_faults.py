"""Disconnects cancel generation; the queue is bounded (429); concurrent requests share forward passes."""
import json
import threading
import time

import httpx
import openai
import pytest
import torch

from .conftest import char_tokenizer, openai_client, start_server
from .helpers import assert_error


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """A deeper random GPT than the session's gpt-nano (8 x 256, 1024-token context): a 1000-token answer takes
    seconds, far past the server's 0.25 s disconnect poll and a queued request's arrival. The gpt-nano decodes 1000
    tokens in about 0.36 s (fused decode step), so a disconnect or a second request could arrive after its answer
    was already whole (seen as a flaky cancel / 429 count)."""
    import lingvis

    torch.manual_seed(0)
    tok = char_tokenizer()
    model = lingvis.build("gpt-nano", vocab_size=tok.vocab_size, block_size=1024, n_layer=8, n_embd=256, n_head=4)
    return lingvis.save(model, tmp_path_factory.mktemp("models") / "slow-lm", tokenizer=tok)


def stats(server, name):
    return httpx.get(f"{server.url}/health").json()["models"][name]


def wait_for(pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def long_stream(server, name, max_tokens=1000):
    body = {"model": name, "prompt": "To be", "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "ignore_eos": True}
    return httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=60)


def test_disconnect_mid_stream_cancels_generation(lm_server, lm_dir):
    before = stats(lm_server, lm_dir.name)
    with long_stream(lm_server, lm_dir.name) as r:
        lines = r.iter_lines()
        got = [json.loads(ln[6:]) for ln in (next(lines) for _ in range(6)) if ln.startswith("data: ")]
        assert got and got[0]["object"] == "text_completion"
    # the client closed the connection after a few tokens: the engine must drop the sequence
    assert wait_for(lambda: stats(lm_server, lm_dir.name)["active"] == 0)
    after = stats(lm_server, lm_dir.name)
    assert after.get("cancelled", 0) == before.get("cancelled", 0) + 1
    assert after["tokens"] - before["tokens"] < 995  # far fewer than the 1000 asked for


def test_queue_bound_gives_429(lm_dir):
    with start_server([lm_dir], max_batch=1, max_queue=1) as srv:
        name = lm_dir.name
        with long_stream(srv, name) as first:
            lines = first.iter_lines()  # (keep the iterator: dropping it closes the connection)
            next(lines)  # running: holds the only batch slot
            opened = threading.Event()

            def second():
                with long_stream(srv, name) as r:
                    opened.set()
                    for _ in r.iter_lines():
                        pass

            t = threading.Thread(target=second, daemon=True)
            t.start()
            assert wait_for(lambda: stats(srv, name)["waiting"] == 1)  # fills the queue
            with pytest.raises(openai.RateLimitError) as e:
                openai_client(srv).completions.create(model=name, prompt="x", max_tokens=1)
            assert_error(e.value.response, 429, code="queue_full")
            assert e.value.response.headers["retry-after"] == "1"
            assert stats(srv, name)["active"] == 1
        assert wait_for(lambda: stats(srv, name)["active"] + stats(srv, name)["waiting"] <= 1)


def test_concurrent_requests_share_forward_passes(lm_server, lm_dir):
    client = openai_client(lm_server)
    prompts = ["To be", "or not", "whether 'tis", "the mind", "slings", "arrows of", "fortune", "Q"]
    want = {p: client.completions.create(model=lm_dir.name, prompt=p, max_tokens=40, temperature=0,
                                         extra_body={"ignore_eos": True}).choices[0].text for p in prompts}
    before = stats(lm_server, lm_dir.name)
    got = {}

    def run(p):
        chunks = client.completions.create(model=lm_dir.name, prompt=p, max_tokens=40, temperature=0, stream=True,
                                           extra_body={"ignore_eos": True})
        got[p] = "".join(c.choices[0].text for c in chunks)

    threads = [threading.Thread(target=run, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert got == want
    after = stats(lm_server, lm_dir.name)
    steps = after["steps"] - before["steps"]
    rows = after["row_steps"] - before["row_steps"]
    assert rows == len(prompts) * 39  # every token after the first comes from a shared decode step
    assert steps < rows  # ... and those steps were shared between requests


def test_client_timeout_on_a_whole_answer_cancels_it(lm_server, lm_dir):
    before = stats(lm_server, lm_dir.name)
    body = {"model": lm_dir.name, "prompt": "To be", "max_tokens": 1000, "temperature": 0, "ignore_eos": True}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{lm_server.url}/v1/completions", json=body, timeout=httpx.Timeout(5, read=0.05))
    assert wait_for(lambda: stats(lm_server, lm_dir.name)["cancelled"] == before["cancelled"] + 1)
    assert wait_for(lambda: stats(lm_server, lm_dir.name)["active"] == 0)
