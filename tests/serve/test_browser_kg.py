"""The knowledge-graph panel of the web page in headless Chromium (Playwright): entity search, an entity page
with its image crops, source sentences (mention highlighted by its span) and triples with provenance, links
between entity pages, the browser's back button, an API key, and the hint when no graph is served."""
from __future__ import annotations

import urllib.parse

import pytest

from .browser import launched, open_page, require_browser

pytest.importorskip("pyoxigraph")
require_browser()

from lingvis.serve import ServeConfig, create_app  # noqa: E402
from lingvis.serve.routes_kg import KGEndpointConfig  # noqa: E402

from .conftest import LiveServer  # noqa: E402
from .kg_graph import BLUE, GREEN, RED, TEXT, make_kg  # noqa: E402

SHOWN = "document.getElementById('kg-entity').dataset.entity === {!r}"
CROPS_LOADED = ("[...document.querySelectorAll('#kg-crops img')].length > 0 && "
                "[...document.querySelectorAll('#kg-crops img')].every(i => i.complete && i.naturalWidth > 0)")


def _serve(kg=None, **config):
    return LiveServer(create_app([], ServeConfig(device="cpu", kg=kg, **config)))


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    return make_kg(tmp_path_factory.mktemp("kg"))


@pytest.fixture(scope="module")
def server(graph):
    with _serve(KGEndpointConfig(str(graph[0]), images=str(graph[1]))) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    with launched() as b:
        yield b


@pytest.fixture
def page(browser, server):
    pg = open_page(browser, server.url + "/", "document.querySelectorAll('#kg-results a').length > 0", height=1400)
    yield pg
    pg.close()


def _links(page, selector):
    return page.eval_on_selector_all(selector, "xs => xs.map(x => x.textContent)")


def test_search_and_entity_page(page, tmp_path):
    assert "3 entities" in page.inner_text("#kg-summary") and page.is_hidden("#kg-panel .hint")
    assert _links(page, "#kg-results a") == [BLUE, RED, GREEN]
    page.fill("#kg-query", "red circle")
    page.click("#kg-search")
    page.wait_for_function("document.querySelectorAll('#kg-results a').length === 1")
    page.click(f"#kg-results a:text-is('{RED}')")
    page.wait_for_function(SHOWN.format(RED))
    assert page.url.endswith("#kg/" + urllib.parse.quote(RED, safe=""))
    facts = page.inner_text("#kg-entity-facts")
    assert "small red circle" in facts and "red" in facts and "s1.png" in facts
    # the image crop: cut by the server from s1.png at the mention's box
    page.wait_for_function(CROPS_LOADED)
    size = page.eval_on_selector("#kg-crops img", "i => [i.naturalWidth, i.naturalHeight]")
    assert size == [24, 24] and "s1.png" in page.inner_text("#kg-crops figcaption")
    # the source sentence, the mention highlighted by its span
    assert page.inner_text("#kg-sentences li mark") == "small red circle"
    assert page.text_content("#kg-sentences li").startswith(TEXT)
    # triples with provenance; the other entity is a link
    rows = page.query_selector_all("#kg-triples tbody tr")
    left = next(r for r in rows if r.query_selector_all("td")[1].inner_text() == "left_of")
    cells = left.query_selector_all("td")
    assert cells[0].inner_text() == RED and cells[3].inner_text() == "0.95"
    prov = cells[4].inner_text()
    assert "caption:1 · text-triples · 0.95 · chars 2-53" in prov and "s1.png · scene-graph · 0.91 · box" in prov
    shot = tmp_path / "kg-entity.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    # follow the link to the square, then back
    cells[2].query_selector("a").click()
    page.wait_for_function(SHOWN.format(BLUE))
    assert page.inner_text("#kg-sentences li mark") == "large blue square"
    assert BLUE in page.inner_text("#kg-entity-title")
    assert RED in _links(page, "#kg-triples a.kg-link")
    page.go_back()
    page.wait_for_function(SHOWN.format(RED))


def test_direct_link_and_refused_crop(browser, server):
    pg = browser.new_page()
    pg.goto(server.url + "/#kg/" + urllib.parse.quote(GREEN, safe=""))
    pg.wait_for_function(SHOWN.format(GREEN))
    pg.wait_for_selector("#kg-crops figure .error")
    figs = pg.query_selector_all("#kg-crops figure")
    assert len(figs) == 2
    evil = next(f for f in figs if "evil.png" in f.inner_text())
    assert "not in the served image folder" in evil.inner_text() and evil.query_selector("img") is None
    pg.wait_for_function(CROPS_LOADED)  # the real image's crop loads
    assert "no caption mentions" in pg.inner_text("#kg-sentences")
    pg.goto(server.url + "/#kg/nothing")
    pg.wait_for_selector("#kg-entity-facts .error")
    assert "no entity 'nothing'" in pg.inner_text("#kg-entity-facts")
    pg.close()


def test_api_key_and_no_graph(browser, graph):
    with _serve(KGEndpointConfig(str(graph[0]), images=str(graph[1])), api_key="sesame") as srv:
        pg = browser.new_page()
        pg.goto(srv.url + "/")
        pg.wait_for_selector("#kg-summary .error")
        pg.fill("#api-key", "sesame")
        pg.dispatch_event("#api-key", "change")
        pg.wait_for_function("document.querySelectorAll('#kg-results a').length === 3")
        pg.click(f"#kg-results a:text-is('{RED}')")
        pg.wait_for_function(CROPS_LOADED)  # crops are fetched with the key
        pg.close()
    with _serve() as srv:
        pg = browser.new_page()
        pg.goto(srv.url + "/")
        pg.wait_for_selector("#kg-panel .hint", state="visible")
        assert "lingvis kg serve" in pg.inner_text("#kg-panel .hint")
        pg.close()
