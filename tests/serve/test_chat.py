"""/v1/chat/completions, whole and streamed, plus the tokenizer endpoints."""
import httpx
import pytest

import lingvis

from .conftest import openai_client

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "To be?"}]


@pytest.fixture(scope="module")
def client(lm_server):
    return openai_client(lm_server)


def test_chat_uses_the_chat_template(client, lm_dir):
    tok = lingvis.load_tokenizer(lm_dir)
    prompt = tok.apply_chat_template(MESSAGES, add_generation_prompt=True)
    chat = client.chat.completions.create(model=lm_dir.name, messages=MESSAGES, max_tokens=10, temperature=0)
    comp = client.completions.create(model=lm_dir.name, prompt=prompt, max_tokens=10, temperature=0)
    assert chat.object == "chat.completion"
    assert chat.choices[0].message.role == "assistant"
    assert chat.choices[0].message.content == comp.choices[0].text
    assert chat.usage.prompt_tokens == len(tok.encode(prompt))


def test_streamed_chat_equals_whole(client, lm_dir):
    kw = dict(model=lm_dir.name, messages=MESSAGES, max_tokens=20, temperature=0, ignore_eos=True)
    whole = client.chat.completions.create(extra_body={"ignore_eos": True},
                                           **{k: v for k, v in kw.items() if k != "ignore_eos"})
    chunks = list(client.chat.completions.create(stream=True, extra_body={"ignore_eos": True},
                                                 **{k: v for k, v in kw.items() if k != "ignore_eos"}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == whole.choices[0].message.content and whole.usage.completion_tokens == 20
    assert chunks[-1].choices[0].finish_reason == "length"
    assert sum(1 for c in chunks if c.choices[0].delta.content) > 1  # tokens arrive one by one


def test_chat_logprobs(client, lm_dir):
    r = client.chat.completions.create(model=lm_dir.name, messages=MESSAGES, max_tokens=4, temperature=0,
                                       logprobs=True, top_logprobs=2, extra_body={"ignore_eos": True})
    content = r.choices[0].logprobs.content
    assert len(content) == 4
    for item in content:
        assert len(item.top_logprobs) == 2 and item.logprob == pytest.approx(item.top_logprobs[0].logprob)


def test_sse_wire_format(lm_server, lm_dir):
    body = {"model": lm_dir.name, "messages": MESSAGES, "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{lm_server.url}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln]
    assert all(ln.startswith("data: ") for ln in lines) and lines[-1] == "data: [DONE]"


def test_tokenizer_endpoints(lm_server, lm_dir):
    tok = lingvis.load_tokenizer(lm_dir)
    r = httpx.post(f"{lm_server.url}/tokenize", json={"prompt": "to be"}).json()
    assert r["tokens"] == tok.encode("to be") and r["max_model_len"] == 1024
    assert httpx.post(f"{lm_server.url}/detokenize", json={"tokens": r["tokens"]}).json()["prompt"] == "to be"
    info = httpx.get(f"{lm_server.url}/tokenizer_info").json()
    assert info["eos_token"] == tok.special_tokens["eos"] and info["chat_template"]
