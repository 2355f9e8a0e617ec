"""Char-level and byte-level BPE trainers: round-trips, specials, determinism, input errors."""

from pathlib import Path

import pytest

from lingvis.tokenizers import CHAT_MARKERS, ENDOFTEXT, train_bpe, train_char


KINDS = ["ascii", "chinese", "emoji", "unicode"]


@pytest.mark.parametrize("kind", KINDS)
def test_char_round_trip(char_tok, samples, kind):
    text = samples[kind]
    ids = char_tok.encode(text)
    assert len(ids) == len(text)  # one id per code point
    assert char_tok.decode(ids) == text


@pytest.mark.parametrize("kind", KINDS)
def test_bpe_round_trip_on_unseen_scripts(bpe_tok, samples, kind):
    text = samples[kind]  # BPE was trained on English only; bytes cover everything else
    ids = bpe_tok.encode(text)
    assert bpe_tok.unk_id is None
    assert max(ids) < bpe_tok.vocab_size
    assert bpe_tok.decode(ids) == text


def test_bpe_learns_merges(bpe_tok, english_text):
    sample = english_text[:2000]
    ids = bpe_tok.encode(sample)
    assert bpe_tok.vocab_size == 1000
    assert len(ids) < 0.5 * len(sample.encode("utf-8"))
    assert bpe_tok.encode_batch([sample, "KING."]) == [ids, bpe_tok.encode("KING.")]


def test_char_vocab_is_specials_then_sorted_chars():
    tok = train_char("bca\n")
    specials = [ENDOFTEXT, "<|unk|>", *CHAT_MARKERS]
    assert [tok.id_to_token(i) for i in range(tok.vocab_size)] == [*specials, "\n", "a", "b", "c"]
    assert tok.eos_id == tok.bos_id == tok.pad_id == 0
    assert tok.unk_id == 1


def test_char_unknown_character_maps_to_unk():
    tok = train_char("abc")
    ids = tok.encode("abz")
    assert ids[-1] == tok.unk_id
    assert tok.decode(ids) == "ab"
    assert tok.decode(ids, skip_special_tokens=False) == "ab<|unk|>"


@pytest.mark.parametrize("trainer", ["char", "bpe"])
def test_specials_and_chat_markers_encode_to_single_ids(trainer, english_text):
    tok = train_char(english_text) if trainer == "char" else train_bpe(english_text, vocab_size=300)
    for marker in (ENDOFTEXT, *CHAT_MARKERS):
        marker_id = tok.token_to_id(marker)
        assert tok.encode(marker) == [marker_id]
        ids = tok.encode(f"ab{marker}cd")
        assert ids.count(marker_id) == 1
        assert tok.decode(ids, skip_special_tokens=False) == f"ab{marker}cd"
    ids = tok.encode(f"x{ENDOFTEXT}y")
    assert tok.eos_id in ids
    assert tok.decode(ids) == "xy"
    assert tok.decode(ids, skip_special_tokens=False) == f"x{ENDOFTEXT}y"
    assert tok.additional_special_tokens == list(CHAT_MARKERS)


def test_custom_special_roles():
    roles = {"eos": "</s>", "bos": "<s>", "pad": "<pad>", "unk": "<unk>"}
    tok = train_bpe("some text here " * 20, vocab_size=300, special_tokens=roles, chat_markers=())
    assert tok.special_tokens == roles
    assert [tok.eos_id, tok.bos_id, tok.pad_id, tok.unk_id] == [0, 1, 2, 3]
    assert tok.additional_special_tokens == []


def test_bpe_training_is_deterministic(english_text):
    a = train_bpe(english_text[:20000], vocab_size=350)
    b = train_bpe(english_text[:20000], vocab_size=350)
    assert a.get_vocab() == b.get_vocab()


def test_train_from_files_and_folders(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("alpha", encoding="utf-8")
    (tmp_path / "docs" / "b.md").write_text("beta", encoding="utf-8")
    (tmp_path / "c.jsonl").write_text('{"body": "gamma"}\n', encoding="utf-8")
    tok = train_char([tmp_path / "docs", tmp_path / "c.jsonl", "δ"], text_field="body")
    for ch in "alphbetgmδ":
        assert tok.token_to_id(ch) is not None
    assert tok.token_to_id("z") is None


def test_train_input_errors(tmp_path):
    with pytest.raises(ValueError, match="too small.*at least 260"):
        train_bpe("text", vocab_size=100)
    with pytest.raises(ValueError, match="no training text"):
        train_bpe(["", ""], vocab_size=300)
    with pytest.raises(ValueError, match="no training text"):
        train_char([""])
    with pytest.raises(TypeError, match="str \\(text\\) or a path, got int"):
        train_char(["ok", 3])
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        train_char(Path(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="unknown special-token role 'start'"):
        train_char("abc", special_tokens={"start": "<s>"})
