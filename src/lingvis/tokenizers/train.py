"""Train tokenizers from raw text or files: char-level and GPT-2 style byte-level BPE.

``texts_or_files`` is a string (text), a path (file, JSONL or folder, read by :mod:`lingvis.data.text`),
or a list mixing both. Python ``str`` items are text; ``pathlib.Path`` / ``os.PathLike`` items are files.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator, Mapping, Sequence, Union

import tokenizers as hf_tok
from tokenizers import Regex, decoders, models, pre_tokenizers, processors, trainers

from lingvis.data.text import read_texts
from lingvis.tokenizers.base import Tokenizer
from lingvis.tokenizers.specials import CHAT_MARKERS, GPT_SPECIAL_TOKENS, validate_roles

TextSource = Union[str, os.PathLike]
CHAR_UNK = "<|unk|>"
BYTE_ALPHABET_SIZE = 256


def iter_texts(texts_or_files: TextSource | Iterable[TextSource], text_field: str = "text") -> Iterator[str]:
    """Yield training texts: strings as given, paths read as documents."""
    items = [texts_or_files] if isinstance(texts_or_files, (str, os.PathLike)) else texts_or_files
    for item in items:
        if isinstance(item, str):
            yield item
        elif isinstance(item, os.PathLike):
            yield from read_texts(item, text_field)
        else:
            raise TypeError(f"training input must be str (text) or a path, got {type(item).__name__}")


def _special_list(roles: Mapping[str, str], extra: Sequence[str]) -> list[str]:
    """Distinct special-token strings, role tokens first, in a stable order."""
    return list(dict.fromkeys([*roles.values(), *extra]))


def train_char(
    texts_or_files: TextSource | Iterable[TextSource],
    special_tokens: Mapping[str, str] | None = None,
    *,
    chat_markers: Sequence[str] = CHAT_MARKERS,
    text_field: str = "text",
) -> Tokenizer:
    """Char-level tokenizer: special tokens first, then every distinct character (sorted).

    Characters never seen in training map to the unk token (``<|unk|>`` unless the roles set one).
    """
    roles = validate_roles(GPT_SPECIAL_TOKENS if special_tokens is None else special_tokens)
    roles.setdefault("unk", CHAR_UNK)
    chars: set[str] = set()
    for text in iter_texts(texts_or_files, text_field):
        chars.update(text)
    if not chars:
        raise ValueError("no training text: every input was empty")
    specials = _special_list(roles, chat_markers)
    vocab = {token: i for i, token in enumerate(specials)}
    for ch in sorted(chars):
        vocab.setdefault(ch, len(vocab))
    backend = hf_tok.Tokenizer(models.WordLevel(vocab, unk_token=roles["unk"]))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens([hf_tok.AddedToken(t, special=True, normalized=False) for t in specials])
    return Tokenizer(backend, roles)


def train_bpe(
    texts_or_files: TextSource | Iterable[TextSource],
    vocab_size: int,
    special_tokens: Mapping[str, str] | None = None,
    *,
    min_frequency: int = 2,
    chat_markers: Sequence[str] = CHAT_MARKERS,
    text_field: str = "text",
    show_progress: bool = False,
) -> Tokenizer:
    """Byte-level BPE (GPT-2 pre-tokenizer and decoder): any UTF-8 text round-trips exactly.

    ``vocab_size`` counts the 256 byte symbols, the special tokens and the learned merges.
    """
    roles = validate_roles(GPT_SPECIAL_TOKENS if special_tokens is None else special_tokens)
    specials = _special_list(roles, chat_markers)
    minimum = BYTE_ALPHABET_SIZE + len(specials)
    if vocab_size < minimum:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: byte-level BPE needs at least {minimum} "
            f"({BYTE_ALPHABET_SIZE} bytes + {len(specials)} special tokens)"
        )
    backend = hf_tok.Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[hf_tok.AddedToken(t, special=True, normalized=False) for t in specials],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=show_progress,
    )
    seen = _CountingIterator(iter_texts(texts_or_files, text_field))
    backend.train_from_iterator(seen, trainer=trainer)
    if seen.chars == 0:
        raise ValueError("no training text: every input was empty")
    return Tokenizer(backend, roles)


class _CountingIterator:
    """Pass texts through while counting characters (to reject an all-empty input)."""

    def __init__(self, texts: Iterator[str]):
        self._texts = texts
        self.chars = 0

    def __iter__(self) -> Iterator[str]:
        for text in self._texts:
            self.chars += len(text)
            yield text
