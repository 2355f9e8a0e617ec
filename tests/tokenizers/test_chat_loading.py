"""HF tokenizer folders: generation_config.json eos lists, added tokens from tokenizer_config.json."""
from __future__ import annotations

import json

import pytest
import tokenizers as hf_tok

from lingvis.tokenizers import Tokenizer


def _folder(tmp_path, bpe_tok, extra_specials=("<|eot_id|>", "<|eom_id|>")):
    backend = hf_tok.Tokenizer.from_str(bpe_tok.backend.to_str())
    backend.add_special_tokens([hf_tok.AddedToken(t, special=True, normalized=False) for t in extra_specials])
    return Tokenizer(backend, bpe_tok.special_tokens).save(tmp_path / "tok")


def test_generation_config_eos_list(bpe_tok, tmp_path):
    folder = _folder(tmp_path, bpe_tok)
    eot, eom = (bpe_tok.vocab_size, bpe_tok.vocab_size + 1)
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [bpe_tok.eos_id, eot, eom],
                                                               "do_sample": True}))
    tok = Tokenizer.load(folder)
    assert tok.eos_id == bpe_tok.eos_id and tok.eos_ids == [bpe_tok.eos_id, eot, eom]
    saved = tok.save(tmp_path / "again")
    assert json.loads((saved / "generation_config.json").read_text())["eos_token_id"] == [bpe_tok.eos_id, eot, eom]
    assert Tokenizer.load(saved).eos_ids == tok.eos_ids
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": eot}))
    (folder / "config.json").write_text(json.dumps({"eos_token_id": [eom]}))
    assert Tokenizer.load(folder).eos_ids == [bpe_tok.eos_id, eot, eom]


@pytest.mark.parametrize(("value", "match"), [
    ("x", r"generation_config.json: eos_token_id must be an int or a list of ints, got 'x'"),
    ([5000], "eos id 5000 is out of range for a vocabulary of 1002 tokens"),
])
def test_bad_generation_config(bpe_tok, tmp_path, value, match):
    folder = _folder(tmp_path, bpe_tok)
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": value}))
    with pytest.raises(ValueError, match=match):
        Tokenizer.load(folder)


def test_added_tokens_from_tokenizer_config(bpe_tok, tmp_path):
    transformers = pytest.importorskip("transformers")
    folder = _folder(tmp_path, bpe_tok, extra_specials=())
    config = json.loads((folder / "tokenizer_config.json").read_text())
    n = bpe_tok.vocab_size
    config["added_tokens_decoder"] = {
        str(bpe_tok.eos_id): {"content": "<|endoftext|>", "special": True},
        str(n): {"content": "<tool_call>", "special": False, "normalized": False},
        str(n + 1): {"content": "<|fim|>", "special": True},
    }
    config["additional_special_tokens"] = ["<|fim|>"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tok = Tokenizer.load(folder)
    text = "say <tool_call> then <|fim|> ok"
    ids = tok.encode(text)
    assert n in ids and n + 1 in ids and tok.vocab_size == n + 2
    assert "<|fim|>" in tok.additional_special_tokens
    assert tok.decode(ids) == "say <tool_call> then  ok"  # the special one is skipped
    theirs = transformers.AutoTokenizer.from_pretrained(folder)
    assert theirs.encode(text, add_special_tokens=False) == ids

    config["added_tokens_decoder"] = {str(n + 5): {"content": "<tool_call>", "special": False}}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=rf"added token '<tool_call>' has id {n + 5} there but id {n} in the"):
        Tokenizer.load(folder)
