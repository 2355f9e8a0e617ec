"""Translation over the OpenAI API (official `openai` client): a lingvis run (EN<->ZH with target tags) gives the
same text as `lingvis translate` (greedy, sampling, beam search with n-best), a Hugging Face Marian folder the
same text as transformers' generate + MarianTokenizer; streaming, target languages, batching, and errors."""
import threading
import time

import httpx
import openai
import pytest
import torch

import lingvis
from lingvis.recipes.translate import read_meta, stream_translation, translate

from .conftest import openai_client, start_server
from .helpers import assert_error

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore:Recommended. pip install sacremoses")
SOURCES = ["a red circle above a blue square", "一个红色圆形", "a small green star"]


@pytest.fixture(scope="module")
def server(mt_run_dir, marian_mt_dir, lm_dir):
    with start_server([mt_run_dir, marian_mt_dir, lm_dir], max_batch=8) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    return openai_client(server)


@pytest.fixture(scope="module")
def run_model(mt_run_dir):
    return lingvis.load(mt_run_dir).eval(), lingvis.load_tokenizer(mt_run_dir), read_meta(mt_run_dir)


def test_models_listing_names_the_target_languages(client, mt_run_dir, marian_mt_dir):
    models = {m.id: m for m in client.models.list().data}
    run, marian = models[mt_run_dir.name].model_extra, models[marian_mt_dir.name].model_extra
    assert run["kind"] == "translation" and run["target_languages"] == ["en", "zh"] and run["target_lang_required"]
    assert set(run["capabilities"]) == {"completions", "chat", "tokenize"}
    assert marian["target_languages"] == ["deu", "fra"] and marian["max_model_len"] == 64


@pytest.mark.parametrize("to", ["zh", "en"])
def test_run_greedy_completions_equal_lingvis_translate(client, run_model, mt_run_dir, to):
    model, tok, meta = run_model
    want = translate(model, tok, SOURCES, to, meta, num_beams=1, max_new_tokens=20)
    got = client.completions.create(model=mt_run_dir.name, prompt=SOURCES, max_tokens=20,
                                    extra_body={"target_lang": to})
    assert [c.text for c in sorted(got.choices, key=lambda c: c.index)] == want
    assert all(c.finish_reason in ("stop", "length") for c in got.choices)
    src_tokens = sum(len(tok.encode(f">>{to}<< {s}", add_special_tokens=True)) for s in SOURCES)
    assert got.usage.prompt_tokens == src_tokens and got.usage.completion_tokens > 0


def test_run_beam_search_n_best_equals_lingvis_translate(client, run_model, mt_run_dir):
    model, tok, meta = run_model
    want = translate(model, tok, SOURCES[:2], "en", meta, num_beams=3, max_new_tokens=16, num_return_sequences=2,
                     length_penalty=0.6)
    got = client.completions.create(model=mt_run_dir.name, prompt=SOURCES[:2], max_tokens=16, n=2,
                                    extra_body={"target_lang": "en", "num_beams": 3, "length_penalty": 0.6})
    assert [c.text for c in sorted(got.choices, key=lambda c: c.index)] == want
    chat = client.chat.completions.create(model=mt_run_dir.name, max_tokens=16,
                                          messages=[{"role": "user", "content": SOURCES[0]}],
                                          extra_body={"target_lang": "en", "num_beams": 3, "length_penalty": 0.6})
    assert chat.choices[0].message.content == want[0]


def test_seeded_sampling_reproduces(client, mt_run_dir):
    def sample(seed):
        r = client.completions.create(model=mt_run_dir.name, prompt=SOURCES[0], max_tokens=12, temperature=1.0,
                                      seed=seed, n=3, extra_body={"target_lang": "en"})
        return [c.text for c in sorted(r.choices, key=lambda c: c.index)]

    first = sample(7)
    assert sample(7) == first
    assert len(set(first)) > 1 or sample(8) != first  # the rows really sample


def test_chat_streams_the_translation_of_the_last_user_message(client, run_model, mt_run_dir):
    model, tok, meta = run_model
    pieces = list(stream_translation(model, tok, SOURCES[1], "en", meta, max_new_tokens=24))
    msgs = [{"role": "system", "content": "ignored"}, {"role": "user", "content": "not this one"},
            {"role": "assistant", "content": "no"}, {"role": "user", "content": SOURCES[1]}]
    stream = client.chat.completions.create(model=mt_run_dir.name, messages=msgs, max_tokens=24, stream=True,
                                            stream_options={"include_usage": True}, extra_body={"target_lang": "en"})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(pieces)
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # arrived in pieces
    assert chunks[-1].usage.completion_tokens > 0 and chunks[-1].usage.prompt_tokens > 0
    whole = client.chat.completions.create(model=mt_run_dir.name, messages=msgs, max_tokens=24,
                                           extra_body={"target_lang": "en"})
    assert whole.choices[0].message.content == text


def test_completion_stream_echo_and_stop(client, run_model, mt_run_dir):
    model, tok, meta = run_model
    source = SOURCES[1]
    want = translate(model, tok, [source], "en", meta, num_beams=1, max_new_tokens=20)[0]
    stream = client.completions.create(model=mt_run_dir.name, prompt=source, max_tokens=20, stream=True,
                                       echo=True, extra_body={"target_lang": "en"})
    text = "".join(c.choices[0].text for c in stream)
    assert text == source + want
    at = next(i for i in range(2, len(want)) if not want[i].isspace())
    stop = want[at:at + 2]
    cut = client.completions.create(model=mt_run_dir.name, prompt=source, max_tokens=20, stop=[stop],
                                    extra_body={"target_lang": "en"}).choices[0]
    assert cut.text == want[:want.index(stop)] and cut.finish_reason == "stop"
    short = client.completions.create(model=mt_run_dir.name, prompt=source, max_tokens=2,
                                      extra_body={"target_lang": "en"})
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 2


def test_marian_folder_equals_transformers(client, marian_mt_dir):
    ref_tok = transformers.MarianTokenizer.from_pretrained(str(marian_mt_dir))
    hf = transformers.MarianMTModel.from_pretrained(str(marian_mt_dir)).eval()
    texts = ["the small cat runs", "das haus ist groß und die katze"]
    batch = ref_tok([f">>deu<< {t}" for t in texts], return_tensors="pt", padding=True)
    with torch.no_grad():
        beams = hf.generate(**batch, num_beams=4, max_new_tokens=20, num_return_sequences=2, length_penalty=0.8)
        greedy = hf.generate(**batch, num_beams=1, do_sample=False, max_new_tokens=20, forced_eos_token_id=None)
    want_beams = ref_tok.batch_decode(beams, skip_special_tokens=True)
    want_greedy = ref_tok.batch_decode(greedy, skip_special_tokens=True)
    got = client.completions.create(model=marian_mt_dir.name, prompt=texts, max_tokens=20, n=2,
                                    extra_body={"target_lang": "deu", "num_beams": 4, "length_penalty": 0.8})
    assert [c.text for c in sorted(got.choices, key=lambda c: c.index)] == want_beams
    assert len({len(t) for t in want_beams}) > 1  # hypotheses of different lengths
    got = client.completions.create(model=marian_mt_dir.name, prompt=texts, max_tokens=20,
                                    extra_body={"target_lang": "deu"})
    assert [c.text for c in sorted(got.choices, key=lambda c: c.index)] == want_greedy


def test_concurrent_requests_share_one_batch_and_match_sequential(server, client, mt_run_dir, monkeypatch):
    prompts = [f"a {c} circle above a {d} square" for c in ("red", "blue", "green") for d in ("red", "blue")]
    limits = [30 - 3 * i for i in range(len(prompts))]  # each request keeps its own max_tokens in the batch
    want = [client.completions.create(model=mt_run_dir.name, prompt=p, max_tokens=m,
                                      extra_body={"target_lang": "zh"}).choices[0].text
            for p, m in zip(prompts, limits)]
    engine = server.server.config.app.state.hub.adapters[mt_run_dir.name].engine
    take, held = engine._take, threading.Event()

    def take_once_all_arrived():  # the engine thread waits (once) until every request is queued
        if not held.is_set():
            held.set()
            deadline = time.monotonic() + 30
            while engine.waiting < len(prompts) and time.monotonic() < deadline:
                time.sleep(0.002)
        return take()

    monkeypatch.setattr(engine, "_take", take_once_all_arrived)
    before = dict(engine.batch_sizes)
    got = [None] * len(prompts)

    def ask(i):
        got[i] = client.completions.create(model=mt_run_dir.name, prompt=prompts[i], max_tokens=limits[i],
                                           extra_body={"target_lang": "zh"}).choices[0].text

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == want
    assert engine.batch_sizes[len(prompts)] == before.get(len(prompts), 0) + 1  # all six in one batch
    health = httpx.get(f"{server.url}/health").json()["models"][mt_run_dir.name]
    assert health["rows"] >= len(prompts) and health["waiting"] == 0


def test_target_language_and_option_errors_name_the_field(client, mt_run_dir, marian_mt_dir, lm_dir):
    def bad(model, param, code=..., **kw):
        with pytest.raises(openai.BadRequestError) as e:
            client.completions.create(model=model, prompt="a red circle", **{"max_tokens": 4, **kw})
        return assert_error(e.value.response, 400, param=param, code=code)

    assert "en, zh" in bad(mt_run_dir.name, "target_lang")["message"]
    assert "'fr'" in bad(mt_run_dir.name, "target_lang", extra_body={"target_lang": "fr"})["message"]
    bad(marian_mt_dir.name, "target_lang", extra_body={"target_lang": "de"})
    bad(mt_run_dir.name, "temperature", "unsupported_parameter",
        extra_body={"target_lang": "en", "num_beams": 2}, temperature=0.8)
    bad(mt_run_dir.name, "n", extra_body={"target_lang": "en", "num_beams": 2}, n=3)
    bad(mt_run_dir.name, "length_penalty", "unsupported_parameter",
        extra_body={"target_lang": "en", "length_penalty": 0.5})
    bad(mt_run_dir.name, "logprobs", "unsupported_parameter", extra_body={"target_lang": "en"}, logprobs=2)
    bad(mt_run_dir.name, "max_tokens", "context_length_exceeded", extra_body={"target_lang": "en"}, max_tokens=64)
    bad(lm_dir.name, "num_beams", "unsupported_parameter", extra_body={"num_beams": 4})
    bad(lm_dir.name, "target_lang", "unsupported_parameter", extra_body={"target_lang": "zh"})
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=mt_run_dir.name, messages=[{"role": "user", "content": "  "}],
                                       extra_body={"target_lang": "en"})
    assert_error(e.value.response, 400, param="messages[0].content")
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=mt_run_dir.name, prompt="a circle " * 40, extra_body={"target_lang": "en"})
    assert_error(e.value.response, 400, param="prompt", code="context_length_exceeded")
