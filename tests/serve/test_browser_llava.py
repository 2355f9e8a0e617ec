"""The web page's image chat in headless Chromium (Playwright): attach an image to a chat message with a llava
model, get the streamed reply the API gives for the same conversation, and follow up about the same image."""

import pytest

from .browser import require_browser, served_page
from .conftest import data_url, openai_client, shape_image, start_server
from .llava_helpers import make_llava_dir

require_browser()


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory):
    return make_llava_dir(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def server(llava_dir, lm_dir):
    with start_server([lm_dir, llava_dir]) as srv:
        yield srv


@pytest.fixture(scope="module")
def page(server):
    with served_page(server.url + "/", "document.querySelectorAll('#chat-model option').length > 1") as pg:
        yield pg


def wait_reply(page, n):
    page.wait_for_function(f"!document.getElementById('chat-send').disabled && "
                           f"document.querySelectorAll('.msg.assistant').length === {n}", timeout=60000)


def test_attach_an_image_to_a_chat_message(page, server, llava_dir, lm_dir, tmp_path):
    page.select_option("#chat-model", lm_dir.name)
    assert page.is_hidden("#chat-attach")  # a text model takes no images
    page.select_option("#chat-model", llava_dir.name)
    assert page.is_visible("#chat-attach")
    red = shape_image("red", "circle")
    path = tmp_path / "red.png"
    red.save(path)
    page.fill("#chat-temperature", "0")
    page.fill("#chat-max-tokens", "12")
    page.set_input_files("#chat-image", str(path))
    page.wait_for_selector("#chat-image-preview:not([hidden])")
    page.fill("#chat-input", "What is this?")
    with page.expect_request(lambda r: r.url.endswith("/v1/chat/completions")) as sent:
        page.click("#chat-send")
    wait_reply(page, 1)
    body = sent.value.post_data_json
    parts = body["messages"][0]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1] == {"type": "text", "text": "What is this?"} and body["stream"] is True
    assert page.is_hidden("#chat-image-preview")  # the attachment went with that message
    assert page.get_attribute(".msg.user img", "src").startswith("data:image/png;base64,")
    client = openai_client(server)
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(red)}},
                                             {"type": "text", "text": "What is this?"}]}]
    want = client.chat.completions.create(model=llava_dir.name, messages=messages, temperature=0,
                                          max_tokens=12).choices[0].message.content
    assert page.text_content(".msg.assistant") == want
    # a follow-up: the image stays in the conversation the page sends
    page.fill("#chat-input", "And?")
    with page.expect_request(lambda r: r.url.endswith("/v1/chat/completions")) as sent:
        page.click("#chat-send")
    wait_reply(page, 2)
    history = sent.value.post_data_json["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert history[0]["content"][0]["type"] == "image_url" and history[2]["content"] == "And?"
