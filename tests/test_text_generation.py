"""Text-level generation: streaming, stop strings, batches of prompts, prompt/context errors."""
import pytest
import torch

import lingvis
from lingvis.text_generation import _held_back, _stop_at
from lingvis.tokenizers import train_char

TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer.\n" * 3


@pytest.fixture(scope="module")
def lm():
    tok = train_char([TEXT])
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=tok.vocab_size, block_size=48).eval()
    return model, tok


def test_streaming_pieces_join_to_the_non_streamed_text(lm):
    model, tok = lm
    for kw in ({}, {"temperature": 0.9, "top_p": 0.9, "seed": 4}):
        whole = lingvis.generate(model, tok, "To be", max_new_tokens=30, **kw)
        pieces = list(lingvis.generate(model, tok, "To be", max_new_tokens=30, stream=True, **kw))
        assert len(pieces) > 1 and "".join(pieces) == whole
        assert len(whole) > 0


def test_stop_string_cuts_before_it_streamed_or_not(lm):
    model, tok = lm
    free = lingvis.generate(model, tok, "whether", max_new_tokens=30)
    stop = free[6:8]  # a string the model is known to produce
    want = free[:free.find(stop)]
    assert lingvis.generate(model, tok, "whether", max_new_tokens=30, stop=stop) == want
    pieces = list(lingvis.generate(model, tok, "whether", max_new_tokens=30, stop=[stop, "zzz"], stream=True))
    assert "".join(pieces) == want
    assert lingvis.generate(model, tok, ["whether"], max_new_tokens=30, stop=stop) == [want]


def test_batched_rows_stop_at_their_stop_string_and_leave_the_batch(lm, monkeypatch):
    model, tok = lm
    prompts = ["whether", "To be", "the question"]
    free = lingvis.generate(model, tok, prompts, max_new_tokens=30)
    stop = free[0][6:8]  # row 0 produces it early; other rows may or may not
    want = [lingvis.generate(model, tok, p, max_new_tokens=30, stop=stop) for p in prompts]
    rows = []
    real = model.forward
    monkeypatch.setattr(model, "forward", lambda ids, **kw: rows.append(tuple(ids.shape)) or real(ids, **kw))
    assert lingvis.generate(model, tok, prompts, max_new_tokens=30, stop=stop) == want
    assert want[0] == free[0][:free[0].find(stop)]
    steps = [b for b, t in rows if t == 1]  # decode steps (prefill runs per prompt length)
    assert steps[0] == len(prompts) and min(steps) < len(prompts)  # the stopped row was no longer computed


def test_stop_string_helpers():
    assert _stop_at("abc<|end|>x", ["<|end|>", "c<"]) == 2
    assert _stop_at("abc", ["zz"]) is None
    assert _held_back("hello <|e", ["<|end|>"]) == 3  # '<|e' may still become '<|end|>'
    assert _held_back("hello", ["<|end|>"]) == 0


def test_batch_of_prompts_equals_each_prompt_alone(lm):
    model, tok = lm
    prompts = ["To", "whether 'tis", "the question"]
    batch = lingvis.generate(model, tok, prompts, max_new_tokens=12, repetition_penalty=1.2)
    alone = [lingvis.generate(model, tok, p, max_new_tokens=12, repetition_penalty=1.2) for p in prompts]
    assert batch == alone


def test_eos_stops_generation(lm):
    _, tok = lm
    model = lingvis.build("gpt-nano", vocab_size=tok.vocab_size, block_size=48, tie_embeddings=False).eval()
    with torch.no_grad():  # ln_f outputs all ones; the head scores only eos: eos is always next
        model.ln_f.weight.zero_()
        model.ln_f.bias.fill_(1.0)
        model.lm_head.weight.zero_()
        model.lm_head.weight[tok.eos_id] = 1.0
    assert lingvis.generate(model, tok, "To be", max_new_tokens=10) == ""
    assert list(lingvis.generate(model, tok, "To be", max_new_tokens=10, stream=True)) == []
    assert lingvis.generate(model, tok, ["To be", "or"], max_new_tokens=10) == ["", ""]


def test_prompt_longer_than_context_is_a_clear_error(lm):
    model, tok = lm
    long_prompt = TEXT[:60]
    with pytest.raises(ValueError, match="prompt of 60 tokens leaves no room in the model's context length 48"):
        lingvis.generate(model, tok, long_prompt, max_new_tokens=5, overflow="slide")
    with pytest.raises(ValueError, match=r"prompt of 40 tokens \+ max_new_tokens 20 = 60 exceeds .* 48"):
        lingvis.generate(model, tok, TEXT[:40], max_new_tokens=20)
    slid = lingvis.generate(model, tok, TEXT[:40], max_new_tokens=20, overflow="slide")
    assert len(slid) == 20  # char tokenizer: one character per token


def test_empty_prompt_and_stream_of_a_list_are_rejected(lm):
    model, tok = lm
    with pytest.raises(ValueError, match="zero tokens"):
        lingvis.generate(model, tok, "", max_new_tokens=3)
    with pytest.raises(ValueError, match="single prompt"):
        lingvis.generate(model, tok, ["a", "b"], stream=True)


def test_every_eos_id_of_the_tokenizer_stops_generation(lm):
    """A tokenizer with extra end-of-generation ids (generation_config.json, e.g. Llama 3's <|eot_id|>) stops
    at any of them, streamed, batched or not."""
    from lingvis.tokenizers import Tokenizer

    model, tok = lm
    kw = dict(max_new_tokens=12, temperature=1.0, seed=1)  # seeded sampling: varied, reproducible tokens
    free = lingvis.generate(model, tok, "To be", **kw)
    ids = tok.encode(free)
    k = next(k for k in range(1, len(ids)) if ids[k] not in ids[:k])  # the first new token after the start
    stopper = ids[k]
    multi = Tokenizer(tok.backend, tok.special_tokens, eos_ids=[stopper])
    assert multi.eos_ids == [tok.eos_id, stopper] and stopper != tok.eos_id
    want = tok.decode(ids[:k])
    assert lingvis.generate(model, multi, "To be", **kw) == want
    assert "".join(lingvis.generate(model, multi, "To be", stream=True, **kw)) == want
    assert lingvis.generate(model, multi, ["To be"], **kw) == [want]


def test_tokenizer_larger_than_the_embedding_is_named(lm, tmp_path, capsys):
    model, _ = lm
    big = train_char([TEXT + "XYZQJK0123456789"])  # more characters: more ids than the model has rows
    assert big.vocab_size > model.config.vocab_size
    msg = f"the tokenizer has {big.vocab_size} tokens but the model's embedding has only {model.config.vocab_size}"
    with pytest.raises(ValueError, match=msg):
        lingvis.generate(model, big, "To be", max_new_tokens=2)
    from lingvis.cli import main

    lingvis.save(model, tmp_path / "m", tokenizer=big)
    assert main(["generate", "--model", str(tmp_path / "m"), "--prompt", "To be", "--max-new-tokens", "2"]) == 2
    assert msg in capsys.readouterr().err
    from lingvis.serve.adapters.registry import open_model
    from lingvis.serve.config import ServeConfig

    with pytest.raises(ValueError, match=msg):  # the server refuses the pair when it opens the model
        open_model("m", tmp_path / "m", ServeConfig())
