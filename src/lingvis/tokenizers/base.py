"""``Tokenizer``: one wrapper around any HF ``tokenizers.Tokenizer`` (BPE, WordPiece, char, ...).

It adds what models and the CLI need on top of the backend: named special-token roles, a chat
template, and save/load in the HF layout (``tokenizer.json`` + ``tokenizer_config.json``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import tokenizers as hf_tok

from lingvis.tokenizers import chat, chat_mask, loading
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
        chat_template: str | list | dict | None = None,
        model_max_length: int | None = None,
        eos_ids: Sequence[int] = (),
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
        self._extra_eos = [int(i) for i in eos_ids]
        bad = [i for i in self._extra_eos if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"eos id {bad[0]} is out of range for a vocabulary of {self.vocab_size} tokens")

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
    def eos_ids(self) -> list[int]:
        """Every id that ends a generation: the eos token and the extra ids of ``generation_config.json``
        (e.g. Llama 3's ``<|eot_id|>`` and ``<|eom_id|>``)."""
        ids = ([] if self.eos_id is None else [self.eos_id]) + self._extra_eos
        return list(dict.fromkeys(ids))

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
    @property
    def has_chat_template(self) -> bool:
        """Whether the tokenizer carries its own template (else the default one is used)."""
        return self.chat_template is not None

    def apply_chat_template(
        self,
        messages: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool = True,
        *,
        tools: Sequence | None = None,
        documents: Sequence | None = None,
        chat_template: str | None = None,
        tokenize: bool = False,
        return_assistant_mask: bool = False,
        **kwargs: Any,
    ) -> str | list[int] | dict[str, list[int]]:
        """Render ``messages`` with the tokenizer's Jinja template (or the default one) as transformers does.

        ``tools``/``documents`` and extra keyword arguments (``date_string``, ``enable_thinking``...) reach
        the template; ``chat_template`` names one of several templates or is a template text. Returns the
        text, its ids with ``tokenize=True``, or ``{"input_ids", "assistant_mask"}`` with
        ``return_assistant_mask=True`` (1 = the token comes from an assistant turn; see ``encode_chat``).
        """
        if return_assistant_mask:
            enc = self.encode_chat(messages, add_generation_prompt=add_generation_prompt, tools=tools,
                                   documents=documents, chat_template=chat_template, **kwargs)
            return {"input_ids": enc.input_ids, "assistant_mask": enc.assistant_mask}
        template = chat.select_template(self.chat_template, chat_template, tools)
        text = chat.render_chat(template, messages, add_generation_prompt, self._special, tools=tools,
                                documents=documents, **kwargs)
        return self.encode(text) if tokenize else text

    def encode_chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = False,
        completion_from: int | None = None,
        tools: Sequence | None = None,
        documents: Sequence | None = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> chat_mask.ChatEncoding:
        """Render and encode a conversation, marking the tokens of its assistant turns.

        Templates with ``{% generation %}`` blocks mark them directly; for any other template each turn is
        found by rendering prefixes of the conversation (see ``lingvis.tokenizers.chat_mask``).
        ``completion_from=k`` marks only what follows the prompt ``messages[:k]``.
        """
        template = chat.select_template(self.chat_template, chat_template, tools)

        def render(msgs, gen_prompt):
            return chat.render_chat_spans(template, msgs, gen_prompt, self._special, tools=tools,
                                          documents=documents, **kwargs)

        text, spans = chat_mask.assistant_spans(render, messages, chat.has_generation_blocks(template),
                                                completion_from)
        if add_generation_prompt:
            text = render(messages, True)[0]
        encoding = self.backend.encode(text, add_special_tokens=False)
        mask = chat_mask.mask_from_offsets(encoding.offsets, spans)
        return chat_mask.ChatEncoding(text, list(encoding.ids), mask, spans)

    # ----- persistence ----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The ``tokenizer_config.json`` content (HF keys)."""
        config: dict[str, Any] = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": False,
            "chat_template": _template_for_config(self.chat_template),
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
        if len(self.eos_ids) > 1:
            loading.write_generation_eos(directory, self.eos_ids)
        return directory

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Load from a folder (``tokenizer.json``, Marian ``source.spm`` + ``vocab.json``, ``vocab.json`` +
        ``merges.txt`` or ``vocab.txt``) or a ``tokenizer.json`` file; ``tokenizer_config.json`` beside it
        supplies roles and template."""
        backend, config = loading.read_backend(path)
        loading.add_config_tokens(backend, config)
        return cls(
            backend,
            resolve_roles(backend, config),
            chat_template=config.get("chat_template"),
            model_max_length=loading.model_max_length(config),
            eos_ids=loading.generation_eos_ids(path),
        )

    def __repr__(self) -> str:
        model = type(self.backend.model).__name__
        return f"Tokenizer({model}, vocab_size={self.vocab_size}, special_tokens={self._special})"


def _template_for_config(chat_template: str | list | dict | None) -> str | list:
    """The ``chat_template`` value of ``tokenizer_config.json``: the text, or HF's list of named templates."""
    if isinstance(chat_template, (list, dict)):
        return [{"name": k, "template": v} for k, v in chat.named_templates(chat_template).items()]
    return chat.select_template(chat_template)
