"""POST /v1/images/generations with the official `openai` client: seeded images, the extensions, and 400s
that name the field."""
import base64
import io

import httpx
import pytest
from PIL import Image

from .conftest import openai_client, start_server
from .helpers import assert_error

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def server(t2i_dir, lm_dir):
    with start_server([t2i_dir, lm_dir]) as srv:
        yield srv


def _png(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_openai_client_generates_seeded_images(server, t2i_dir):
    client = openai_client(server)
    kw = dict(prompt="a small red circle", n=2, size="16x16", response_format="b64_json")
    a = client.images.generate(**kw, extra_body={"seed": 3, "steps": 2, "guidance_scale": 3.0})
    b = client.images.generate(**kw, extra_body={"seed": 3, "steps": 2, "guidance_scale": 3.0})
    c = client.images.generate(**kw, extra_body={"seed": 4, "steps": 2, "guidance_scale": 3.0,
                                                 "negative_prompt": "blue", "scheduler": "dpm++"})
    assert len(a.data) == 2 and a.created > 0
    assert _png(a.data[0].b64_json).size == (16, 16) and _png(a.data[0].b64_json).mode == "RGB"
    assert [d.b64_json for d in a.data] == [d.b64_json for d in b.data]
    assert a.data[0].b64_json != c.data[0].b64_json and a.data[0].b64_json != a.data[1].b64_json
    models = {m.id: m.model_extra for m in client.models.list().data}
    assert models[t2i_dir.name]["kind"] == "text_to_image" and models[t2i_dir.name]["sizes"] == ["16x16", "32x32"]


def test_url_format_and_default_size(server):
    r = httpx.post(f"{server.url}/v1/images/generations", json={"prompt": "two green stars", "steps": 1,
                                                              "response_format": "url", "seed": 0}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["size"] == "16x16" and body["seed"] == 0
    assert body["data"][0]["url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize("body,param", [
    ({"prompt": "x", "size": "17x17"}, "size"), ({"prompt": "x", "n": 9}, "n"), ({"prompt": "   "}, "prompt"),
    ({"prompt": ""}, "prompt"), ({"prompt": "x", "steps": 0}, "steps"),
    ({"prompt": "x", "guidance_scale": -1}, "guidance_scale"),
    ({"prompt": "x", "scheduler": "plms", "steps": 1}, "scheduler"), ({"prompt": "x", "response_format": "gif"},
                                                                      "response_format"),
])
def test_bad_requests_name_the_field(server, body, param):
    r = httpx.post(f"{server.url}/v1/images/generations", json=body, timeout=60)
    assert_error(r, 400, param=param)


def test_openai_client_sees_the_400(server):
    import openai

    with pytest.raises(openai.BadRequestError) as e:
        openai_client(server).images.generate(prompt="a red circle", size="1024x1024")
    assert e.value.body["param"] == "size"


def test_text_model_cannot_generate_images(server, lm_dir):
    r = httpx.post(f"{server.url}/v1/images/generations", json={"prompt": "x", "model": lm_dir.name}, timeout=60)
    assert_error(r, 400, param="model", code="unsupported_model")
