"""--allowed-origins: CORS preflight and response headers for the listed origins only (errors included, so a
page can read them); none by default (see test_metrics); bad origins are refused at start."""
import httpx
import pytest

from lingvis.cli.serve import split_origins
from lingvis.serve import ServeConfig

from .conftest import start_server
from .helpers import assert_error

APP, EVIL = "https://app.example", "https://evil.example"


@pytest.fixture(scope="module")
def server(lm_dir):
    with start_server([lm_dir], api_key="k", allowed_origins=[APP, "http://localhost:3000"]) as srv:
        yield srv


def preflight(server, origin, method="POST", headers="authorization,content-type"):
    return httpx.options(f"{server.url}/v1/chat/completions", headers={
        "Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers})


def test_preflight_allows_listed_origins_only(server):
    ok = preflight(server, APP)
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == APP
    assert "authorization" in ok.headers["access-control-allow-headers"].lower()
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in ok.headers
    bad = preflight(server, EVIL)
    assert bad.status_code == 400 and bad.headers.get("access-control-allow-origin") != EVIL


def test_answers_carry_the_header_for_listed_origins(server, lm_dir):
    body = {"model": lm_dir.name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    r = httpx.post(f"{server.url}/v1/chat/completions", json=body,
                   headers={"Origin": APP, "Authorization": "Bearer k"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == APP
    denied = httpx.post(f"{server.url}/v1/chat/completions", json=body, headers={"Origin": APP})
    assert_error(denied, 401)
    assert denied.headers["access-control-allow-origin"] == APP  # the page can show the error
    other = httpx.get(f"{server.url}/v1/models", headers={"Origin": EVIL, "Authorization": "Bearer k"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers


def test_origins_are_checked_and_split():
    for bad in (["app.example"], ["https://app.example/"], ["ftp://x"]):
        with pytest.raises(ValueError, match="allowed origin"):
            ServeConfig(allowed_origins=bad).validate()
    ServeConfig(allowed_origins=["*", APP]).validate()
    assert split_origins(["https://a.example, https://b.example", "http://c.example:8080"]) == \
        ["https://a.example", "https://b.example", "http://c.example:8080"]
