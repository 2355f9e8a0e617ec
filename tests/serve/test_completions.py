"""/v1/completions and /v1/models through the official `openai` client against a real server."""
import pytest
import torch

import lingvis
from lingvis.generate import generate_ids

from .conftest import openai_client


@pytest.fixture(scope="module")
def client(lm_server):
    return openai_client(lm_server)


@pytest.fixture(scope="module")
def local(lm_dir):
    return lingvis.load(lm_dir), lingvis.load_tokenizer(lm_dir)


def test_models_listing(client, lm_dir):
    models = client.models.list().data
    assert [m.id for m in models] == [lm_dir.name]
    m = models[0]
    assert m.object == "model" and m.owned_by == "lingvis"
    assert m.model_extra["context_length"] == 1024
    assert {"completions", "chat"} <= set(m.model_extra["capabilities"])
    assert client.models.retrieve(lm_dir.name).id == lm_dir.name


def test_text_and_token_prompts_match_local_greedy(client, local, lm_dir):
    model, tok = local
    ids = tok.encode("To be, or")
    expected = tok.decode(generate_ids(model, torch.tensor([ids]), max_new_tokens=12)[0, len(ids):])
    by_text = client.completions.create(model=lm_dir.name, prompt="To be, or", max_tokens=12, temperature=0)
    by_ids = client.completions.create(model=lm_dir.name, prompt=ids, max_tokens=12, temperature=0)
    assert by_text.choices[0].text == by_ids.choices[0].text == expected
    assert by_text.choices[0].finish_reason == "length"
    assert by_text.usage.prompt_tokens == len(ids) and by_text.usage.completion_tokens == 12


def test_batch_of_prompts_keeps_order(client, lm_dir):
    prompts = ["whether", "the slings", "Z"]
    batch = client.completions.create(model=lm_dir.name, prompt=prompts, max_tokens=6, temperature=0)
    assert [c.index for c in batch.choices] == [0, 1, 2]
    for p, c in zip(prompts, batch.choices):
        one = client.completions.create(model=lm_dir.name, prompt=p, max_tokens=6, temperature=0)
        assert c.text == one.choices[0].text


def test_echo_logprobs_match_the_model(client, local, lm_dir):
    """What lm-evaluation-harness's local-completions sends for log-likelihoods."""
    model, tok = local
    ids = tok.encode("the question: whether")
    r = client.completions.create(model=lm_dir.name, prompt=ids, max_tokens=1, temperature=0, logprobs=1,
                                  echo=True, seed=1234)
    lp = r.choices[0].logprobs
    assert len(lp.token_logprobs) == len(ids) + 1 and lp.token_logprobs[0] is None
    assert r.choices[0].text.startswith("the question: whether")
    with torch.no_grad():
        ref = model(torch.tensor([ids]))[0].log_softmax(-1)  # (T, V)
    want = [ref[t - 1, ids[t]].item() for t in range(1, len(ids))]
    assert max(abs(a - b) for a, b in zip(lp.token_logprobs[1:len(ids)], want)) < 1e-4
    greedy_next = tok.decode([int(ref[-1].argmax())], skip_special_tokens=False)
    assert lp.tokens[-1] == greedy_next and abs(lp.token_logprobs[-1] - ref[-1].max().item()) < 1e-4
    for top, tlp in zip(lp.top_logprobs[1:], lp.token_logprobs[1:]):
        assert len(top) == 1 and max(top.values()) >= tlp - 1e-6
    lm_eval = pytest.importorskip("lm_eval.models.openai_completions")
    (score, greedy), = lm_eval.LocalCompletionsAPI.parse_logprobs(r.model_dump(), ctxlens=[5])
    assert abs(score - sum(want[4:])) < 1e-3 and isinstance(greedy, bool)


def test_echo_only_scores_the_prompt(client, lm_dir):
    r = client.completions.create(model=lm_dir.name, prompt="to be", max_tokens=0, logprobs=0, echo=True)
    c = r.choices[0]
    assert c.text == "to be" and c.finish_reason == "length" and len(c.logprobs.tokens) == 5


def test_n_seed_and_stop(client, lm_dir):
    kw = dict(model=lm_dir.name, prompt="To be", max_tokens=8, temperature=1.0, n=3, seed=7)
    a, b = client.completions.create(**kw), client.completions.create(**kw)
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert [c.text for c in a.choices] == [c.text for c in b.choices]
    assert len({c.text for c in a.choices}) > 1
    full = client.completions.create(model=lm_dir.name, prompt="To be", max_tokens=10, temperature=0).choices[0].text
    stop = full[3:5]
    cut = client.completions.create(model=lm_dir.name, prompt="To be", max_tokens=10, temperature=0, stop=[stop])
    assert cut.choices[0].text == full[:full.index(stop)] and cut.choices[0].finish_reason == "stop"


def test_streamed_completion_equals_whole(client, lm_dir):
    kw = dict(model=lm_dir.name, prompt="not to be", max_tokens=15, temperature=0)
    whole = client.completions.create(**kw).choices[0].text
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 15


@pytest.mark.parametrize("mode,activations", [("weights", "float"), ("w8a8", "int8")])
def test_int8_server_matches_local_int8_greedy(lm_dir, mode, activations):
    from lingvis.quant import fbgemm_available, quantize_int8
    from lingvis.serve import ServeConfig

    from .conftest import start_server

    if activations == "int8" and not fbgemm_available():
        pytest.skip("torch build without fbgemm/x86 int8")
    tok = lingvis.load_tokenizer(lm_dir)
    q = quantize_int8(lingvis.load(lm_dir), activations=activations)
    ids = tok.encode("To be, or")
    expected = tok.decode(generate_ids(q, torch.tensor([ids]), max_new_tokens=10)[0, len(ids):])
    with start_server([lm_dir], int8=mode) as srv:
        got = openai_client(srv).completions.create(model=lm_dir.name, prompt="To be, or", max_tokens=10,
                                                    temperature=0)
    assert got.choices[0].text == expected
    with pytest.raises(ValueError, match="int8 must be"):
        ServeConfig(int8="int4").validate()
    with pytest.raises(ValueError, match="for CPU serving"):
        ServeConfig(int8="w8a8", device="cuda").validate()
