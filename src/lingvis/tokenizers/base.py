"""``Tokenizer``: one wrapper around any HF ``tokenizers.Tokenizer`` (BPE, WordPiece, char, ...).

It adds what models and the CLI need on top of the backend: named special-token roles, a chat
template, and save/load in the HF layout (``tokenizer.json`` + ``tokenizer_config.json``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import tokenizers as hf_tok

from lingvis.tokenizers import chat, loading
from lingvis.tokenizers.specials import ROLES, resolve_roles, validate_roles


class Tokenizer:
    """Wrap ``backend``; ``special_tokens`` maps roles (eos, bos, pad, unk, cls, sep, mask) to tokens.

    When ``special_tokens`` is None the roles are inferred from well-known token strings. Every role
    token must be in the vocabulary; it is registered as a special added token on the backend (so it
    always encodes to a single id and ``decode`` can skip it). Padding and truncation stored in a
    ``tokenizer.json`` are switched off: ``encode`` returns exactly the ids of the text, and
    collators pad batches themselves.
    """

    def __init__(
        self,
        backend: hf_tok.Tokenizer,
        special_tokens: Mapping[str, str] | None = None,
        *,
        chat_template: str | list | None = None,
        model_max_length: int | None = None,
    ):
        if not isinstance(backend, hf_tok.Tokenizer):
            raise TypeError(f"backend must be a tokenizers.Tokenizer, got {type(backend).__name__}")
        backend.no_padding()
        backend.no_truncation()
        self.backend = backend
        roles = resolve_roles(backend, None) if special_tokens is None else special_tokens
        self._special = validate_roles(roles)
        self._register_specials()
        self.chat_template = chat_template
        self.model_max_length = model_max_length

    def _register_specials(self) -> None:
        added = {tok.content for tok in self.backend.get_added_tokens_decoder().values() if tok.special}
        for role, token in self._special.items():
            if self.backend.token_to_id(token) is None:
                raise ValueError(
                    f"special token {token!r} (role {role!r}) is not in the vocabulary "
                    f"of {self.backend.get_vocab_size()} tokens"
                )
            if token not in added:
                self.backend.add_special_tokens([hf_tok.AddedToken(token, special=True, normalized=False)])
                added.add(token)

    # ----- encoding -------------------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text``; ``add_special_tokens`` applies the backend's post-processor."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def encode_batch(self, texts: Sequence[str], add_special_tokens: bool = False) -> list[list[int]]:
        """Token ids of each text (encoded in parallel by the backend)."""
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"encode_batch expects strings; texts[{i}] is {type(text).__name__}")
        encodings = self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)
        return [enc.ids for enc in encodings]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids`` (a list, tuple, 1-D tensor or array); special tokens dropped by default."""
        ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
        size = self.vocab_size
        bad = [i for i in ids if not 0 <= i < size]
        if bad:
            raise ValueError(f"token id {bad[0]} is out of range for a vocabulary of {size}")
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def __len__(self) -> int:
        return self.vocab_size

    # ----- vocabulary and roles -------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    @property
    def special_tokens(self) -> dict[str, str]:
        """Role -> token string for the roles this tokenizer has."""
        return dict(self._special)

    @property
    def additional_special_tokens(self) -> list[str]:
        """Special added tokens that have no role (e.g. the chat markers ``<|user|>``)."""
        decoder = self.backend.get_added_tokens_decoder()
        role_tokens = set(self._special.values())
        return [t.content for _, t in sorted(decoder.items()) if t.special and t.content not in role_tokens]

    def _role_id(self, role: str) -> int | None:
        token = self._special.get(role)
        return None if token is None else self.backend.token_to_id(token)

    @property
    def eos_id(self) -> int | None:
        return self._role_id("eos")

    @property
    def bos_id(self) -> int | None:
        return self._role_id("bos")

    @property
    def pad_id(self) -> int | None:
        return self._role_id("pad")

    @property
    def unk_id(self) -> int | None:
        return self._role_id("unk")

    @property
    def cls_id(self) -> int | None:
        return self._role_id("cls")

    @property
    def sep_id(self) -> int | None:
        return self._role_id("sep")

    @property
    def mask_id(self) -> int | None:
        return self._role_id("mask")

    def token_to_id(self, token: str) -> int | None:
        """Id of a token string, or None when it is not in the vocabulary."""
        return self.backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        """Token string of an id, or None when out of range."""
        return self.backend.id_to_token(int(token_id))

    def get_vocab(self) -> dict[str, int]:
        """Token -> id for the whole vocabulary, added tokens included."""
        return self.backend.get_vocab(with_added_tokens=True)

    # ----- chat -----------------------------------------------------------------------------
    def apply_chat_template(
        self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True
    ) -> str:
        """Prompt text for ``messages`` via the config's Jinja template or the default one."""
        template = chat.select_template(self.chat_template)
        return chat.render_chat(template, messages, add_generation_prompt, self._special)

    # ----- persistence ----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The ``tokenizer_config.json`` content (HF keys)."""
        config: dict[str, Any] = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": False,
            "chat_template": chat.select_template(self.chat_template),
        }
        for role in ROLES:
            config[f"{role}_token"] = self._special.get(role)
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        return config

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` into ``directory``; return it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.backend.save(str(directory / loading.TOKENIZER_FILE))
        loading.write_config(directory, self.config())
        return directory

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Load from a folder (``tokenizer.json``, Marian ``source.spm`` + ``vocab.json``, ``vocab.json`` +
        ``merges.txt`` or ``vocab.txt``) or a ``tokenizer.json`` file; ``tokenizer_config.json`` beside it
        supplies roles and template."""
        backend, config = loading.read_backend(path)
        return cls(
            backend,
            resolve_roles(backend, config),
            chat_template=config.get("chat_template"),
            model_max_length=loading.model_max_length(config),
        )

    def __repr__(self) -> str:
        model = type(self.backend.model).__name__
        return f"Tokenizer({model}, vocab_size={self.vocab_size}, special_tokens={self._special})"
