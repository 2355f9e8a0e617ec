"""Shared fixtures: small trained tokenizers (session scope keeps the suite fast)."""

import pytest

from lingvis.data.corpus import shakespeare_text
from lingvis.tokenizers import train_bpe, train_char

SAMPLES = {
    "ascii": "Hello, world!\n\tTabs  and   spaces; numbers 12345.",
    "unicode": "naïve café — Ωμέγα, Привет, Ærøskøbing",
    "chinese": "你好，世界。机器学习很有趣！",
    "emoji": "🙂👍🏽 👨‍👩‍👧 🇯🇵 ok",
}


@pytest.fixture(scope="session")
def samples() -> dict[str, str]:
    """Round-trip strings keyed by kind (ascii, unicode, chinese, emoji)."""
    return dict(SAMPLES)


@pytest.fixture(scope="session")
def english_text() -> str:
    return shakespeare_text()[:60_000]


@pytest.fixture(scope="session")
def bpe_tok(english_text):
    return train_bpe(english_text, vocab_size=1000)


@pytest.fixture(scope="session")
def char_tok(english_text):
    return train_char([english_text, *SAMPLES.values()])
