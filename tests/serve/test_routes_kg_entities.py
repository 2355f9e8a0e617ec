"""The entity-page routes: search, entity pages, and crops cut only from images the graph registers inside the
served image folder."""
from __future__ import annotations

import io
import urllib.parse

import pytest

pytest.importorskip("pyoxigraph")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from lingvis.serve import ServeConfig, create_app  # noqa: E402
from lingvis.serve.routes_kg import KGEndpointConfig  # noqa: E402

from .kg_graph import BLUE, GREEN, RED, make_kg  # noqa: E402


@pytest.fixture(scope="module")
def kg(tmp_path_factory):
    return make_kg(tmp_path_factory.mktemp("kg"))


def _client(graph, images=None, **config):
    return TestClient(create_app([], ServeConfig(kg=KGEndpointConfig(str(graph), images=images and str(images)),
                                                 **config)))


def _path(entity: str) -> str:
    return "/v1/kg/entities/" + urllib.parse.quote(entity, safe="")


def test_summary_search_and_entity(kg):
    graph, images = kg
    with _client(graph, images) as c:
        assert c.get("/v1/kg/summary").json() == {"entities": 3, "images": 3, "captions": 1, "statements": 8,
                                                  "crops": True}
        r = c.get("/v1/kg/entities", params={"q": "blue square"})
        assert [e["id"] for e in r.json()["data"]] == [BLUE]
        page = c.get(_path(RED)).json()
        assert page["id"] == RED and page["sentences"][0]["span"] == [2, 18]
        assert c.get("/v1/kg/entities/" + RED).json()["id"] == RED  # an unquoted '/' works too
        r = c.get(_path("s1.png/nothing"))
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert c.get("/v1/kg/entities", params={"limit": 0}).status_code == 400


def test_crops(kg):
    graph, images = kg
    with _client(graph, images) as c:
        red = c.get(_path(RED)).json()["images"][0]
        r = c.get(f"/v1/kg/crops/{red['mention']}")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        im = Image.open(io.BytesIO(r.content)).convert("RGB")
        assert im.size == (24, 24)  # the box (0.1-0.4 of 64 px) widened by 10% each side
        assert im.getpixel((12, 12)) == (220, 30, 30)  # the red circle, not the blue square
        caption_mention = c.get(_path(RED)).json()["sentences"][0]["mention"]
        assert c.get(f"/v1/kg/crops/{caption_mention}").status_code == 404  # no box: not an image mention
        for bad in ("..%2F..%2Fsecret.png", "s1.png", "0" * 20):
            assert c.get(f"/v1/kg/crops/{bad}").status_code == 404
        # a registered image whose file name leaves the folder is refused, though the file exists
        evil = next(i for i in c.get(_path(GREEN)).json()["images"] if i["source"] == "evil.png")
        assert evil["file"] == "../secret.png" and (images.parent / "secret.png").is_file()
        r = c.get(f"/v1/kg/crops/{evil['mention']}")
        assert r.status_code == 404 and "not in the served image folder" in r.json()["error"]["message"]
    with _client(graph) as c:  # no image folder: pages work, crops say how to get them
        assert c.get("/v1/kg/summary").json()["crops"] is False
        r = c.get(f"/v1/kg/crops/{red['mention']}")
        assert r.status_code == 404 and "--images" in r.json()["error"]["message"]


def test_api_key_and_no_graph(kg, tmp_path):
    graph, images = kg
    with _client(graph, images, api_key="k") as c:
        assert c.get("/v1/kg/entities").status_code == 401
        assert c.get("/v1/kg/crops/" + "0" * 20).status_code == 401
        assert c.get("/v1/kg/entities", headers={"Authorization": "Bearer k"}).status_code == 200
    with TestClient(create_app([], ServeConfig())) as c:
        assert c.get("/v1/kg/summary").status_code == 404
    with pytest.raises(FileNotFoundError, match="--images"):
        create_app([], ServeConfig(kg=KGEndpointConfig(str(graph), images=str(tmp_path / "none"))))
