"""The web page in headless Chromium (Playwright): streamed chat, streamed translation (greedy and beam search),
questions about an uploaded image, text-to-image search, and a screenshot."""

import pytest

from .browser import require_browser, served_page
from .conftest import shape_image, start_server

require_browser()

# records the reply's length at every MutationObserver callback (one per stream read that brought text)
WATCH = """() => {
  window.__lengths = [];
  new MutationObserver(() => {
    const bubble = document.querySelector('.msg.assistant');
    if (bubble) window.__lengths.push(bubble.textContent.length);
  }).observe(document.getElementById('chat-log'), {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def server(lm_dir, clip_dir, vqa_dir, captioner_dir, mt_run_dir, image_folder):
    with start_server([lm_dir, clip_dir, vqa_dir, captioner_dir, mt_run_dir], image_folder=image_folder) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server):
    with served_page(server.url + "/", "document.querySelectorAll('#chat-model option').length > 0") as pg:
        yield pg


def test_chat_streams_tokens(page, server, lm_dir):
    from .conftest import openai_client

    want = openai_client(server).chat.completions.create(
        model=lm_dir.name, messages=[{"role": "user", "content": "To be, or not to be?"}], temperature=0,
        max_tokens=600).choices[0].message.content
    assert len(want) > 100
    page.fill("#chat-temperature", "0")
    page.fill("#chat-max-tokens", "600")
    page.evaluate(WATCH)
    page.fill("#chat-input", "To be, or not to be?")
    page.click("#chat-send")
    page.wait_for_function("!document.getElementById('chat-send').disabled && "
                           "document.querySelector('.msg.assistant') !== null", timeout=60000)
    assert page.inner_text(".msg.user") == "To be, or not to be?"
    assert page.text_content(".msg.assistant") == want
    lengths = page.evaluate("window.__lengths")
    assert any(0 < n < len(want) for n in lengths)  # the reply was shown while it was still growing


def test_translation_streams_into_the_chosen_language(page, server, mt_run_dir):
    from .conftest import openai_client

    source = "一个红色圆形"
    client = openai_client(server)

    def want(**extra):
        return client.completions.create(model=mt_run_dir.name, prompt=source, extra_body={"target_lang": "en",
                                         **extra}).choices[0].text

    greedy, beams = want(), want(num_beams=3)
    assert len(greedy) > 5
    page.select_option("#translate-model", mt_run_dir.name)
    assert page.is_visible("#translate-target") and \
        page.eval_on_selector_all("#translate-target option", "o => o.map(x => x.value)") == ["en", "zh"]
    page.select_option("#translate-target", "en")
    page.fill("#translate-beams", "1")
    page.fill("#translate-input", source)
    with page.expect_response(lambda r: r.url.endswith("/v1/completions")) as answer:
        page.click("#translate-run")
    sent = answer.value.request.post_data_json
    assert sent["stream"] is True and sent["target_lang"] == "en" and "num_beams" not in sent
    assert answer.value.headers["content-type"].startswith("text/event-stream")
    page.wait_for_function("!document.getElementById('translate-run').disabled && "
                           "document.getElementById('translate-output').textContent.length > 0", timeout=60000)
    assert page.text_content("#translate-output") == greedy
    page.fill("#translate-beams", "3")
    page.evaluate("document.getElementById('translate-output').textContent = ''")
    page.click("#translate-run")
    page.wait_for_function("!document.getElementById('translate-run').disabled && "
                           "document.getElementById('translate-output').textContent.length > 0", timeout=60000)
    assert page.text_content("#translate-output") == beams


def test_image_upload_zero_shot_vqa_and_caption(page, server, clip_dir, vqa_dir, captioner_dir, tmp_path):
    path = tmp_path / "upload.png"
    shape_image("red", "circle").save(path)
    page.select_option("#image-model", clip_dir.name)
    page.set_input_files("#image-file", str(path))
    page.wait_for_selector("#image-preview:not([hidden])")
    assert page.is_hidden("#vqa-run") and page.is_visible("#zs-run")
    page.fill("#zs-labels", "a red circle, a blue square, a cat")
    page.click("#zs-run")
    page.wait_for_selector("#image-result .bar")
    rows = page.query_selector_all("#image-result .bar")
    assert len(rows) == 3 and all("%" in r.inner_text() for r in rows)
    page.select_option("#image-model", vqa_dir.name)
    page.fill("#vqa-question", "what color is it?")
    page.click("#vqa-run")
    page.wait_for_selector("#image-result .answer")
    from .conftest import ANSWERS

    assert page.inner_text("#image-result .answer") in ANSWERS
    import httpx

    from .conftest import data_url

    want = httpx.post(f"{server.url}/v1/images/captions",
                      json={"model": captioner_dir.name, "image": data_url(shape_image("red", "circle"))}).json()
    page.select_option("#image-model", captioner_dir.name)
    assert page.is_visible("#caption-run") and page.is_hidden("#zs-run")
    page.click("#caption-run")
    page.wait_for_function("document.querySelector('#image-result .answer') && "
                           "!document.querySelector('#image-result .bar')")
    assert page.text_content("#image-result .answer") == want["caption"]


def test_search_gallery_and_screenshot(page, tmp_path):
    page.fill("#search-query", "a green circle")
    page.fill("#search-k", "4")
    page.click("#search-run")
    page.wait_for_selector("#gallery figure img")
    figures = page.query_selector_all("#gallery figure")
    assert len(figures) == 4
    assert page.get_attribute("#gallery figure img", "src").startswith("data:image/jpeg;base64,")
    page.wait_for_function("[...document.querySelectorAll('#gallery img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    shot = tmp_path / "lingvis-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_panels_without_a_model_say_what_to_serve(page, lm_server):
    other = page.context.browser.new_page()
    other.goto(lm_server.url + "/")
    other.wait_for_function("document.querySelectorAll('#chat-model option').length > 0")
    assert other.is_hidden("#chat-panel .hint")
    assert other.is_visible("#image-panel .hint") and other.is_visible("#search-panel .hint")
    assert other.is_visible("#translate-panel .hint") and "seq2seq" in other.inner_text("#translate-panel .hint")
    assert "--image-folder" in other.inner_text("#search-panel .hint")
    other.close()
