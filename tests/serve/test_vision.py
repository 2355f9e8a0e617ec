"""CLIP behind the server: zero-shot classification, image search over a folder, text embeddings,
and the image limits."""
import base64

import httpx
import numpy as np
import pytest

import lingvis
from lingvis import zeroshot

from .conftest import data_url, openai_client, shape_image, start_server
from .helpers import assert_error


@pytest.fixture(scope="module")
def server(clip_dir, lm_dir, image_folder):
    with start_server([clip_dir, lm_dir], image_folder=image_folder, max_image_pixels=64 * 64) as srv:
        yield srv


@pytest.fixture(scope="module")
def local(clip_dir):
    return lingvis.load(clip_dir), lingvis.load_tokenizer(clip_dir)


def test_listing_shows_kinds_and_capabilities(server, clip_dir, lm_dir):
    models = {m.id: m.model_extra for m in openai_client(server).models.list().data}
    assert models[clip_dir.name]["kind"] == "clip"
    assert {"zero_shot", "image_search", "embeddings"} <= set(models[clip_dir.name]["capabilities"])
    assert models[lm_dir.name]["kind"] == "causal_lm"


def test_zero_shot_matches_local(server, clip_dir, local):
    model, tok = local
    labels = ["a red circle", "a blue square", "a cat"]
    im = shape_image("red", "circle")
    r = httpx.post(f"{server.url}/v1/images/zero-shot", json={"model": clip_dir.name, "image": data_url(im),
                                                              "labels": labels, "template": "{}"})
    assert r.status_code == 200, r.text
    got = {d["label"]: d["score"] for d in r.json()["data"]}
    want = zeroshot.zero_shot_classify(model, tok, [im], labels)[0]["scores"]
    assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-4 for k in got)
    scores = [d["score"] for d in r.json()["data"]]
    assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-4
    assert r.json()["label"] == r.json()["data"][0]["label"]


def test_image_search_ranks_the_folder(server, clip_dir, local, image_folder):
    model, tok = local
    r = httpx.post(f"{server.url}/v1/images/search", json={"query": "a red circle", "top_k": 3})
    assert r.status_code == 200, r.text
    hits = r.json()["data"]
    assert len(hits) == 3 and [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    q = zeroshot.embed_texts(model, tok, ["a red circle"])[0]
    for h in hits:
        img = zeroshot.embed_images(model, [lingvis.data.images.load_image(image_folder / h["file"])])[0]
        assert abs(float(img @ q) - h["score"]) < 1e-4
        assert h["thumbnail"].startswith("data:image/jpeg;base64,")
    everything = httpx.post(f"{server.url}/v1/images/search", json={"query": "x", "top_k": 100}).json()["data"]
    assert sorted(h["file"] for h in everything) == sorted(
        str(p.relative_to(image_folder)) for p in image_folder.rglob("*_*.png"))  # the broken file is skipped


def test_clip_text_embeddings_float_and_base64(server, clip_dir, local):
    model, tok = local
    texts = ["a red circle", "a blue square"]
    want = zeroshot.embed_texts(model, tok, texts).numpy()
    client = openai_client(server)
    floats = client.embeddings.create(model=clip_dir.name, input=texts, encoding_format="float")
    assert np.allclose(np.array([d.embedding for d in floats.data]), want, atol=1e-5)
    default = client.embeddings.create(model=clip_dir.name, input=texts)  # the client asks for base64
    assert np.allclose(np.array([d.embedding for d in default.data]), want, atol=1e-5)
    raw = httpx.post(f"{server.url}/v1/embeddings", json={"model": clip_dir.name, "input": "a red circle",
                                                          "encoding_format": "base64"}).json()
    vec = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(vec, want[0], atol=1e-6)
    assert raw["usage"]["prompt_tokens"] == int(model.tokenize(tok, ["a red circle"])[1].sum())


def test_image_limits_and_bad_images(server, clip_dir):
    url = f"{server.url}/v1/images/zero-shot"
    body = {"model": clip_dir.name, "labels": ["a", "b"]}
    big = shape_image("red", "circle", size=80)  # 6400 pixels > 64 * 64
    err = assert_error(httpx.post(url, json={**body, "image": data_url(big)}), 400, param="image",
                       code="image_too_large")
    assert "6400" in err["message"]
    assert_error(httpx.post(url, json={**body, "image": "data:image/png;base64,%%%"}), 400, code="invalid_image")
    assert_error(httpx.post(url, json={**body, "image": base64.b64encode(b"garbage").decode()}), 400,
                 code="invalid_image")
    assert_error(httpx.post(url, json={**body, "image": "https://example.com/cat.png"}), 400,
                 code="unsupported_image_url")
    assert_error(httpx.post(url, json={**body, "image": data_url(shape_image("red", "circle")),
                                       "template": "no placeholder"}), 400, param="template")


def test_capability_mismatch_and_missing_kind(server, clip_dir, lm_dir):
    client = openai_client(server)
    import openai

    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=lm_dir.name, input="x")
    assert_error(e.value.response, 400, param="model", code="unsupported_model")
    with pytest.raises(openai.NotFoundError) as e:
        client.embeddings.create(model="nope", input="x")
    assert_error(e.value.response, 404)
    r = httpx.post(f"{server.url}/v1/images/captions", json={"image": data_url(shape_image("red", "circle"))})
    assert_error(r, 404, code="model_not_found")  # no captioning model is served here


@pytest.fixture(scope="module")
def vqa_server(vqa_dir):
    with start_server([vqa_dir], max_image_pixels=64 * 64) as srv:
        yield srv


def test_vqa_endpoint_and_chat_with_an_image(vqa_server, vqa_dir):
    from lingvis.tasks.vqa import answer_questions

    model, tok = lingvis.load(vqa_dir), lingvis.load_tokenizer(vqa_dir)
    im = shape_image("blue", "square")
    want = answer_questions(model, tok, im, ["what shape is it?"], top_k=3)[0]
    r = httpx.post(f"{vqa_server.url}/v1/images/answers",
                   json={"image": data_url(im), "question": "what shape is it?", "top_k": 3})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["answer"] == want[0][0]
    assert [(a["answer"], round(a["score"], 5)) for a in got["answers"]] == [(a, round(p, 5)) for a, p in want]
    client = openai_client(vqa_server)
    msg = [{"role": "user", "content": [{"type": "text", "text": "what shape is it?"},
                                        {"type": "image_url", "image_url": {"url": data_url(im)}}]}]
    chat = client.chat.completions.create(model=vqa_dir.name, messages=msg)
    assert chat.choices[0].message.content == want[0][0]
    streamed = "".join(c.choices[0].delta.content or "" for c in
                       client.chat.completions.create(model=vqa_dir.name, messages=msg, stream=True))
    assert streamed == want[0][0]
    import openai

    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=vqa_dir.name, messages=[{"role": "user", "content": "hi"}])
    assert_error(e.value.response, 400, code="image_required")
