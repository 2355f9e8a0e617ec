"""The web page's text-to-image panel in headless Chromium (Playwright): only image-generation models are listed
with their sizes, the request carries the prompt, count, size, steps, guidance and seed, the images shown are the
ones the API gives for the same seeded request, and the server's 400 is shown naming the field."""

import pytest

from .browser import require_browser, served_page
from .conftest import openai_client, start_server

pytest.importorskip("diffusers")
require_browser()


@pytest.fixture(scope="module")
def server(t2i_dir, lm_dir):
    with start_server([t2i_dir, lm_dir]) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server):
    with served_page(server.url + "/", "document.querySelectorAll('#gen-model option').length > 0") as pg:
        yield pg


def test_generate_images_from_the_page(page, server, t2i_dir):
    options = page.eval_on_selector_all("#gen-model option", "els => els.map(e => e.value)")
    assert options == [t2i_dir.name]  # the language model is not offered here
    assert page.eval_on_selector_all("#gen-size option", "els => els.map(e => e.value)") == ["16x16", "32x32"]
    page.fill("#gen-prompt", "a small red circle")
    page.fill("#gen-n", "2")
    page.fill("#gen-steps", "2")
    page.fill("#gen-guidance", "3")
    page.fill("#gen-seed", "7")
    with page.expect_request(lambda r: r.url.endswith("/v1/images/generations")) as sent:
        page.click("#gen-run")
    page.wait_for_function("document.querySelectorAll('#gen-gallery img').length === 2 && "
                           "!document.getElementById('gen-run').disabled", timeout=60000)
    body = sent.value.post_data_json
    assert body == {"model": t2i_dir.name, "prompt": "a small red circle", "n": 2, "size": "16x16",
                    "response_format": "b64_json", "steps": 2, "guidance_scale": 3, "seed": 7}
    want = openai_client(server).images.generate(
        model=t2i_dir.name, prompt="a small red circle", n=2, size="16x16", response_format="b64_json",
        extra_body={"seed": 7, "steps": 2, "guidance_scale": 3.0})
    shown = page.eval_on_selector_all("#gen-gallery img", "els => els.map(e => e.src)")
    assert shown == ["data:image/png;base64," + d.b64_json for d in want.data]
    assert page.inner_text("#gen-gallery figcaption") == "seed 7 · 1/2"


def test_errors_are_shown(page):
    page.fill("#gen-prompt", "   ")
    page.click("#gen-run")
    assert page.inner_text("#gen-gallery .error") == "write a prompt first"
    page.fill("#gen-prompt", "a red circle")
    page.fill("#gen-n", "9")  # over the model's max_images: the browser's own check holds the form back
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.click("#gen-run")
    assert page.evaluate("!document.getElementById('gen-n').checkValidity()")
    assert not [u for u in requests if u.endswith("/v1/images/generations")]
    page.evaluate("document.getElementById('gen-n').removeAttribute('max')")  # then the server's 400 shows
    page.click("#gen-run")
    page.wait_for_function("document.querySelector('#gen-gallery .error') !== null && "
                           "document.querySelector('#gen-gallery .error').textContent.startsWith('error: ')",
                           timeout=60000)
    text = page.inner_text("#gen-gallery .error")
    assert text.startswith("error: n: ") and "8" in text, text
    assert not page.is_disabled("#gen-run")
