"""Captioners behind the server (/v1/images/captions, chat with an image) and the micro-batcher that
groups concurrent caption requests."""
import asyncio
import threading

import httpx
import pytest

import lingvis
from lingvis.recipes.caption import caption_images
from lingvis.serve.errors import QueueFull
from lingvis.serve.microbatch import MicroBatcher

from .conftest import data_url, openai_client, shape_image, start_server


@pytest.fixture(scope="module")
def server(captioner_dir):
    with start_server([captioner_dir], max_image_pixels=64 * 64) as srv:
        yield srv


def test_captions_match_local_and_concurrent_requests_batch(server, captioner_dir):
    model, tok = lingvis.load(captioner_dir), lingvis.load_tokenizer(captioner_dir)
    images = [shape_image(c, s) for c in ("red", "blue", "green") for s in ("circle", "square")]
    want = caption_images(model, tok, images, num_beams=1, max_new_tokens=12)
    got = [None] * len(images)

    def ask(i):
        r = httpx.post(f"{server.url}/v1/images/captions",
                       json={"image": data_url(images[i]), "num_beams": 1, "max_tokens": 12}, timeout=60)
        got[i] = r.json()["caption"]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == want
    beams = httpx.post(f"{server.url}/v1/images/captions", json={"image": data_url(images[0]), "num_beams": 3,
                                                                 "max_tokens": 12}).json()
    assert beams["caption"] == caption_images(model, tok, images[:1], num_beams=3, max_new_tokens=12)[0]
    st = httpx.get(f"{server.url}/health").json()["models"][captioner_dir.name]
    assert st["items"] == len(images) + 1


def test_chat_with_an_image_returns_the_caption(server, captioner_dir):
    model, tok = lingvis.load(captioner_dir), lingvis.load_tokenizer(captioner_dir)
    im = shape_image("yellow", "square")
    msg = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(im)}}]}]
    r = openai_client(server).chat.completions.create(model=captioner_dir.name, messages=msg, max_tokens=12)
    assert r.choices[0].message.content == caption_images(model, tok, [im], num_beams=3, max_new_tokens=12)[0]


def test_micro_batcher_groups_waiting_requests_by_key():
    release = threading.Event()
    calls = []

    def fn(key, items):
        calls.append((key, list(items)))
        if len(calls) == 1:
            release.wait(10)  # hold the first batch until everything else is queued
        return [f"{key}:{i}" for i in items]

    async def main():
        mb = MicroBatcher(fn, max_batch=3, max_queue=5, name="t")
        first = asyncio.ensure_future(mb.submit("a", 0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(mb.submit(k, i)) for k, i in [("a", 1), ("b", 2), ("a", 3), ("a", 4), ("b", 5)]]
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull):
            await mb.submit("a", 6)
        release.set()
        return await first, await asyncio.gather(*rest), mb.stats()

    first, rest, st = asyncio.run(main())
    assert first == "a:0" and rest == ["a:1", "b:2", "a:3", "a:4", "b:5"]
    assert calls == [("a", [0]), ("a", [1, 3, 4]), ("b", [2, 5])]
    assert st["batches"] == 3 and st["largest_batch"] == 3
