"""The Tokenizer wrapper: roles, decode inputs, WordPiece backends, errors."""

import numpy as np
import pytest
import tokenizers as hf_tok
import torch
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

from lingvis.tokenizers import Tokenizer

WORDPIECE_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "##s", "on", "mat", "."]


def wordpiece_backend() -> hf_tok.Tokenizer:
    vocab = {tok: i for i, tok in enumerate(WORDPIECE_VOCAB)}
    backend = hf_tok.Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return backend


def test_wordpiece_roles_inferred_and_post_processor():
    tok = Tokenizer(wordpiece_backend())
    assert tok.special_tokens == {
        "pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"
    }
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.eos_id is None and tok.bos_id is None
    plain = tok.encode("The cats sat on the mat.")
    assert plain == [5, 6, 8, 7, 9, 5, 10, 11]
    assert tok.encode("The cats sat", add_special_tokens=True) == [2, 5, 6, 8, 7, 3]
    assert tok.encode("dog") == [tok.unk_id]
    assert tok.decode([2, *plain, 3]) == "the cats sat on the mat."
    assert tok.encode("the [MASK] sat") == [5, 4, 7]  # role tokens become special added tokens


def test_wordpiece_save_load_keeps_roles(tmp_path):
    tok = Tokenizer(wordpiece_backend(), {"cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]", "unk": "[UNK]"})
    loaded = Tokenizer.load(tok.save(tmp_path / "wp"))
    assert loaded.special_tokens == tok.special_tokens  # pad stays absent: the config says null
    assert loaded.pad_id is None
    assert loaded.encode("the cat", add_special_tokens=True) == [2, 5, 6, 3]


def test_decode_accepts_tensors_arrays_and_tuples(bpe_tok):
    ids = bpe_tok.encode("To be, or not to be")
    expected = bpe_tok.decode(ids)
    assert bpe_tok.decode(torch.tensor(ids)) == expected
    assert bpe_tok.decode(np.array(ids)) == expected
    assert bpe_tok.decode(tuple(ids)) == expected


def test_vocab_lookups(bpe_tok):
    token = bpe_tok.id_to_token(bpe_tok.eos_id)
    assert token == "<|endoftext|>"
    assert bpe_tok.token_to_id("no-such-token-xyz") is None
    assert bpe_tok.id_to_token(bpe_tok.vocab_size + 5) is None
    assert len(bpe_tok) == bpe_tok.vocab_size == len(bpe_tok.get_vocab())
    assert isinstance(bpe_tok.backend, hf_tok.Tokenizer)


def test_padding_and_truncation_in_tokenizer_json_are_ignored():
    backend = wordpiece_backend()
    backend.enable_padding(pad_id=0, pad_token="[PAD]", length=16)
    backend.enable_truncation(max_length=3)
    tok = Tokenizer(backend)
    assert tok.encode("the cat sat on the mat") == [5, 6, 7, 9, 5, 10]


def test_wrapper_errors(bpe_tok):
    with pytest.raises(ValueError, match="token id 99999 is out of range for a vocabulary of 1000"):
        bpe_tok.decode([1, 99999])
    with pytest.raises(ValueError, match="token id -1"):
        bpe_tok.decode([-1])
    with pytest.raises(TypeError, match="encode expects a str, got bytes"):
        bpe_tok.encode(b"bytes")
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        bpe_tok.encode_batch(["ok", 5])
    with pytest.raises(ValueError, match=r"'<eos>' \(role 'eos'\) is not in the vocabulary"):
        Tokenizer(wordpiece_backend(), {"eos": "<eos>"})
    with pytest.raises(ValueError, match="unknown special-token role 'start'"):
        Tokenizer(wordpiece_backend(), {"start": "[CLS]"})
    with pytest.raises(TypeError, match="backend must be a tokenizers.Tokenizer"):
        Tokenizer("not a backend")
