"""Every error class in the OpenAI shape: 400, 401, 404, 413, context overflow."""
import httpx
import openai
import pytest

from .conftest import openai_client, start_server
from .helpers import assert_error


@pytest.fixture(scope="module")
def client(lm_server):
    return openai_client(lm_server)


def test_validation_error_is_400_with_param(client, lm_dir):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=lm_dir.name, prompt="x", temperature=-1)
    assert_error(e.value.response, 400, param="temperature", code="invalid_value")


def test_missing_field_and_bad_json(lm_server, lm_dir):
    assert_error(httpx.post(f"{lm_server.url}/v1/completions", json={"model": lm_dir.name}), 400, param="prompt")
    r = httpx.post(f"{lm_server.url}/v1/completions", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert_error(r, 400)


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="no-such-model", prompt="x")
    err = assert_error(e.value.response, 404, param="model", code="model_not_found")
    assert "no-such-model" in err["message"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_context_overflow_names_both_numbers(client, lm_dir):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=lm_dir.name, prompt="abcd", max_tokens=1100)
    err = assert_error(e.value.response, 400, param="max_tokens", code="context_length_exceeded")
    assert "1024" in err["message"] and "1104" in err["message"] and "4 in the prompt" in err["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=lm_dir.name, messages=[{"role": "user", "content": "x" * 1030}])
    assert_error(e.value.response, 400, code="context_length_exceeded")


def test_unsupported_values_are_400(client, lm_dir):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=lm_dir.name, prompt="x", presence_penalty=0.5)
    assert_error(e.value.response, 400, param="presence_penalty", code="unsupported_parameter")
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=lm_dir.name, prompt=[[1, 2, 99999]])
    assert "99999" in assert_error(e.value.response, 400, param="prompt")["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=lm_dir.name, prompt="x", logprobs=50)
    assert_error(e.value.response, 400, param="logprobs")


def test_images_to_a_text_model_are_400(client, lm_dir):
    msg = [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=lm_dir.name, messages=msg)
    assert_error(e.value.response, 400, code="unsupported_content")


def test_body_over_the_limit_is_413(lm_server, lm_dir):
    big = {"model": lm_dir.name, "prompt": "a" * (300 * 1024)}
    err = assert_error(httpx.post(f"{lm_server.url}/v1/completions", json=big), 413, code="request_too_large")
    assert str(256 * 1024) in err["message"]

    def chunked():  # no Content-Length: counted while reading
        yield b'{"prompt": "'
        for _ in range(40):
            yield b"a" * 8192
        yield b'"}'

    r = httpx.post(f"{lm_server.url}/v1/completions", content=chunked(), headers={"content-type": "application/json"})
    assert_error(r, 413, code="request_too_large")


def test_api_key_is_required_when_set(lm_dir):
    with start_server([lm_dir], api_key="sekrit") as srv:
        with pytest.raises(openai.AuthenticationError) as e:
            openai_client(srv).models.list()
        assert_error(e.value.response, 401, code="invalid_api_key")
        assert_error(httpx.post(f"{srv.url}/v1/completions", json={"prompt": "x"}), 401)
        assert_error(httpx.post(f"{srv.url}/tokenize", json={"prompt": "x"}), 401)
        ok = openai_client(srv, api_key="sekrit")
        assert ok.completions.create(model=lm_dir.name, prompt="to", max_tokens=2).choices[0].text is not None
        assert httpx.get(f"{srv.url}/health").status_code == 200
        assert httpx.get(f"{srv.url}/").status_code == 200


def test_binds_loopback_by_default():
    from lingvis.cli import build_parser
    from lingvis.serve import ServeConfig

    assert ServeConfig().host == "127.0.0.1"
    args = build_parser().parse_args(["serve", "--model", "x"])
    assert args.host == "127.0.0.1" and args.port == 8000


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


@pytest.mark.parametrize("kw,param", [
    (dict(tools=[TOOL]), "tools"), (dict(tools=[TOOL], tool_choice="auto"), "tools"),
    (dict(response_format={"type": "json_object"}), "response_format"),
    (dict(logit_bias={"5": 10}), "logit_bias"), (dict(frequency_penalty=0.3), "frequency_penalty"),
    (dict(extra_body={"functions": [{"name": "f", "parameters": {}}]}), "functions"),
    (dict(extra_body={"tool_choice": "required"}), "tool_choice"), (dict(store=True), "store"),
])
def test_unimplemented_openai_fields_are_400_naming_them(client, lm_dir, kw, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=lm_dir.name, messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=2, **kw)
    assert param in assert_error(e.value.response, 400, param=param, code="unsupported_parameter")["message"]


def test_neutral_values_and_fields_openai_does_not_define_pass(client, lm_dir):
    r = client.chat.completions.create(model=lm_dir.name, messages=[{"role": "user", "content": "hi"}], max_tokens=2,
                                       response_format={"type": "text"}, logit_bias={}, store=False,
                                       extra_body={"tools": [], "vendor_extension": 1})
    assert r.choices[0].finish_reason in ("stop", "length")
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=lm_dir.name, prompt="x", max_tokens=2, logit_bias={"5": 1})
    assert_error(e.value.response, 400, param="logit_bias", code="unsupported_parameter")
