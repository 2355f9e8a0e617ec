"""Image chat with a llava model through /v1/chat/completions: OpenAI image_url content parts (data URLs, and
remote URLs of allowed hosts only), streaming, batching with other requests in the one engine, features
computed once per request, and the errors for bad images and placeholder/image count mismatches."""
import base64
import http.server
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch

import lingvis
from lingvis.data.llava_inputs import chat_prompt_ids, pixel_values
from lingvis.generate import SamplingConfig
from lingvis.serve.batching import Engine
from lingvis.serve.sequences import SeqSpec

from .conftest import data_url, openai_client, shape_image, start_server
from .llava_helpers import make_llava_dir


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return make_llava_dir(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def image_host():
    """A local HTTP server with one small PNG (/red.png) and one oversized body (/big.png)."""
    buf = io.BytesIO()
    shape_image("red", "circle").save(buf, format="PNG")
    files = {"/red.png": buf.getvalue(), "/big.png": b"x" * 300_000}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture(scope="module")
def server(llava_dir, lm_dir):
    with start_server([llava_dir, lm_dir], allow_image_hosts=["127.0.0.1"], max_image_bytes=200_000,
                      max_image_pixels=200 * 200, max_batch=16) as srv:
        yield srv


def image_message(text, *images):
    return [{"role": "user", "content": [*({"type": "image_url", "image_url": {"url": u}} for u in images),
                                         {"type": "text", "text": text}]}]


def offline(llava_dir, messages, images, n=12):
    """The same chat through lingvis.generate (greedy)."""
    model, tok = lingvis.load(llava_dir), lingvis.load_tokenizer(llava_dir)
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True)
    return lingvis.generate(model, tok, prompt, max_new_tokens=n, images=images)


def test_image_chat_matches_offline_generation_and_streams(server, llava_dir):
    client = openai_client(server)
    red = shape_image("red", "circle")
    r = client.chat.completions.create(model=llava_dir.name, messages=image_message("What is it?", data_url(red)),
                                       max_tokens=12, temperature=0)
    want = offline(llava_dir, [{"role": "user", "content": "<image>\nWhat is it?"}], [red])
    assert r.choices[0].message.content == want
    model = lingvis.load(llava_dir)
    assert r.usage.prompt_tokens > model.tokens_per_image  # image slots count as prompt tokens
    chunks = list(client.chat.completions.create(model=llava_dir.name, stream=True, temperature=0, max_tokens=12,
                                                 messages=image_message("What is it?", data_url(red))))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == want


def test_two_images_and_a_follow_up_turn(server, llava_dir):
    red, blue = shape_image("red", "circle"), shape_image("blue", "square")
    messages = image_message("Compare them.", data_url(red), data_url(blue)) + [
        {"role": "assistant", "content": "ok"}, {"role": "user", "content": "And now?"}]
    r = openai_client(server).chat.completions.create(model=llava_dir.name, messages=messages, max_tokens=12,
                                                      temperature=0)
    want = offline(llava_dir, [{"role": "user", "content": "<image>\n<image>\nCompare them."},
                               {"role": "assistant", "content": "ok"}, {"role": "user", "content": "And now?"}],
                   [red, blue])
    assert r.choices[0].message.content == want


def post(server, body):
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)


def test_placeholder_count_mismatch_names_both(server, llava_dir):
    red = data_url(shape_image("red", "circle"))
    r = post(server, {"model": llava_dir.name, "messages": image_message("<image> twice?", red)})
    assert r.status_code == 400
    msg = r.json()["error"]["message"]
    assert "2 image placeholder(s)" in msg and "1 image(s)" in msg


def test_remote_urls_need_an_allowed_host(server, llava_dir, image_host):
    r = post(server, {"model": llava_dir.name, "messages": image_message("hi", "https://example.com/a.png")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_image_url"
    assert "--allow-image-hosts" in r.json()["error"]["message"] and "example.com" in r.json()["error"]["message"]
    fetched = post(server, {"model": llava_dir.name, "max_tokens": 12, "temperature": 0,
                            "messages": image_message("What is it?", image_host + "/red.png")})
    inline = post(server, {"model": llava_dir.name, "max_tokens": 12, "temperature": 0,
                           "messages": image_message("What is it?", data_url(shape_image("red", "circle")))})
    assert fetched.status_code == 200
    assert fetched.json()["choices"][0]["message"]["content"] == inline.json()["choices"][0]["message"]["content"]
    big = post(server, {"model": llava_dir.name, "messages": image_message("hi", image_host + "/big.png")})
    assert big.status_code == 413 and "200000 bytes" in big.json()["error"]["message"]
    missing = post(server, {"model": llava_dir.name, "messages": image_message("hi", image_host + "/none.png")})
    assert missing.status_code == 400 and "HTTP 404" in missing.json()["error"]["message"]


def test_bad_images_are_refused_naming_the_limit(server, llava_dir):
    junk = "data:image/png;base64," + base64.b64encode(b"not a png").decode()
    r = post(server, {"model": llava_dir.name, "messages": image_message("hi", junk)})
    assert r.status_code == 400 and r.json()["error"]["param"].startswith("messages[0].content[0]")
    huge = data_url(shape_image("red", "circle", size=300))
    r = post(server, {"model": llava_dir.name, "messages": image_message("hi", huge)})
    assert r.status_code == 400 and "max_pixels=40000" in r.json()["error"]["message"]


def test_text_models_refuse_images_and_completions_refuse_placeholders(server, llava_dir, lm_dir):
    red = data_url(shape_image("red", "circle"))
    r = post(server, {"model": lm_dir.name, "messages": image_message("hi", red)})
    assert r.status_code == 400 and "text-only" in r.json()["error"]["message"]
    r = httpx.post(f"{server.url}/v1/completions", json={"model": llava_dir.name, "prompt": "<image> hi"}, timeout=30)
    assert r.status_code == 400 and "/v1/chat/completions" in r.json()["error"]["message"]
    models = {m["id"]: m for m in httpx.get(f"{server.url}/v1/models").json()["data"]}
    assert models[llava_dir.name]["kind"] == "llava" and "image_chat" in models[llava_dir.name]["capabilities"]


def test_image_chats_batch_with_text_chats(server, llava_dir):
    client = openai_client(server)
    colours = ["red", "blue", "green", "yellow"]
    jobs = [dict(messages=image_message("Colour?", data_url(shape_image(c, "circle")))) for c in colours]
    jobs += [dict(messages=[{"role": "user", "content": f"Say {c}."}]) for c in colours]

    def ask(kw):
        return client.chat.completions.create(model=llava_dir.name, max_tokens=16, temperature=0,
                                              extra_body={"ignore_eos": True}, **kw).choices[0].message.content

    alone = [ask(kw) for kw in jobs]
    engine = server.server.config.app.state.hub.adapters[llava_dir.name].engine
    engine.batch_sizes.clear()
    with ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(ask, jobs))
    assert together == alone
    mixed = max(engine.batch_sizes)
    assert mixed > 1, engine.batch_sizes  # decode steps ran image and text chats as rows of one batch


def test_engine_prefills_image_rows_with_text_rows_and_encodes_each_request_once(llava_dir):
    model, tok = lingvis.load(llava_dir), lingvis.load_tokenizer(llava_dir)
    calls = []
    features = model.image_features
    model.image_features = lambda px: (calls.append(px.shape[0]), features(px))[1]
    red, blue = shape_image("red", "circle"), shape_image("blue", "square")
    chats = [([{"role": "user", "content": "<image>\nWhat?"}], [red]),
             ([{"role": "user", "content": "Hello there"}], []),
             ([{"role": "user", "content": "<image>\n<image>\nBoth?"}], [red, blue])]
    cfg = SamplingConfig(max_new_tokens=10)
    specs = []
    for msgs, imgs in chats:
        px = pixel_values(model, imgs)
        ids = chat_prompt_ids(tok, model, msgs, len(imgs))
        specs += [SeqSpec(ids, cfg, images=px)] * (2 if imgs == [red] else 1)  # n=2 for the first: one encoding
    got: dict[int, list[int]] = {}
    finished: set[int] = set()
    done = threading.Event()

    def sink(events):
        for e in events:
            if e.token is not None:
                got.setdefault(e.index, []).append(e.token)
            if e.finish is not None:
                finished.add(e.index)
        if len(finished) == len(specs):
            done.set()

    engine = Engine(model, max_batch=8).start()
    try:
        engine.submit(specs, sink)
        assert done.wait(60)
    finally:
        engine.close()
    assert calls == [1, 2]  # one tower pass per request (the n=2 pair shares one), text rows none
    assert engine.stats()["prefills"] == 1  # image and text prompts were prefilled together
    for i, spec in enumerate(specs):
        ids = torch.tensor([spec.prompt])
        want = model.generate(ids, 10, pixel_values=spec.images)[0, ids.shape[1]:].tolist()
        assert got[i] == want
