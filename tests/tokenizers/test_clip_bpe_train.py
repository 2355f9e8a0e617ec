"""train_clip_bpe: a CLIP-style BPE folder that lingvis and transformers read the same way."""
import json

import pytest

from lingvis.tokenizers.clip_bpe import is_clip_folder, load_clip_bpe, train_clip_bpe

TEXTS = ["a small red circle above a large blue square", "two green stars left of an orange cross"] * 3


def test_trained_folder_loads_and_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    folder = train_clip_bpe(TEXTS, 300, tmp_path / "tok", model_max_length=32)
    assert is_clip_folder(folder)
    vocab = json.loads((folder / "vocab.json").read_text())
    assert all(p + "</w>" in vocab for p in vocab if len(p) == 1)  # every byte also ends a word, as in CLIP
    ours = load_clip_bpe(folder)
    ref = transformers.CLIPTokenizer.from_pretrained(folder)
    assert ours.model_max_length == ref.model_max_length == 32
    for text in ["A small  RED circle!", "two green stars", "an unseen word: zebra 42"]:
        assert ours.encode(text, add_special_tokens=True) == ref(text)["input_ids"]


def test_rejects_tiny_vocab(tmp_path):
    with pytest.raises(ValueError, match="vocab_size=1"):
        train_clip_bpe(TEXTS, 1, tmp_path / "tok")
