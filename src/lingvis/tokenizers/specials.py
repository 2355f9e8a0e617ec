"""Special-token roles: defaults for trained tokenizers and how roles are read from HF configs."""

from __future__ import annotations

from typing import Any, Mapping

import tokenizers as hf_tok

ROLES = ("eos", "bos", "pad", "unk", "cls", "sep", "mask")

ENDOFTEXT = "<|endoftext|>"
GPT_SPECIAL_TOKENS = {"eos": ENDOFTEXT, "bos": ENDOFTEXT, "pad": ENDOFTEXT}
CHAT_ROLES = ("system", "user", "assistant")
CHAT_MARKERS = tuple(f"<|{role}|>" for role in CHAT_ROLES)

# Well-known token strings -> roles, used only when a tokenizer comes without a tokenizer_config.json.
_KNOWN_TOKENS = {
    ENDOFTEXT: ("eos", "bos"),
    "<s>": ("bos",),
    "</s>": ("eos",),
    "<pad>": ("pad",),
    "<|pad|>": ("pad",),
    "<unk>": ("unk",),
    "<|unk|>": ("unk",),
    "<mask>": ("mask",),
    "[PAD]": ("pad",),
    "[UNK]": ("unk",),
    "[CLS]": ("cls",),
    "[SEP]": ("sep",),
    "[MASK]": ("mask",),
}


def validate_roles(special_tokens: Mapping[str, str]) -> dict[str, str]:
    """Check role names and token types; return a plain dict without ``None`` entries."""
    out = {}
    for role, token in special_tokens.items():
        if role not in ROLES:
            raise ValueError(f"unknown special-token role {role!r}; roles are {', '.join(ROLES)}")
        if token is None:
            continue
        if not isinstance(token, str) or not token:
            raise ValueError(f"special token for role {role!r} must be a non-empty string, got {token!r}")
        out[role] = token
    return out


def token_content(value: Any) -> str | None:
    """A token as written in HF configs: a string, ``None`` or an AddedToken dict with ``content``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    raise ValueError(f"cannot read a special token from {value!r}")


def roles_from_config(config: Mapping[str, Any]) -> dict[str, str | None]:
    """Roles stated in a tokenizer_config.json (``None`` = stated absent; missing keys are left out)."""
    found = {}
    for role in ROLES:
        key = f"{role}_token"
        if key in config:
            found[role] = token_content(config[key])
    return found


def infer_roles(backend: hf_tok.Tokenizer) -> dict[str, str]:
    """Guess roles from the model's unk token and well-known special-token strings in the vocabulary."""
    vocab = backend.get_vocab(with_added_tokens=True)
    roles: dict[str, str] = {}
    for token, token_roles in _KNOWN_TOKENS.items():
        if token in vocab:
            for role in token_roles:
                roles.setdefault(role, token)
    unk = getattr(backend.model, "unk_token", None)
    if isinstance(unk, str) and unk in vocab:
        roles["unk"] = unk
    return roles


def resolve_roles(backend: hf_tok.Tokenizer, config: Mapping[str, Any] | None) -> dict[str, str]:
    """Roles from the config where it states them, inferred from the vocabulary otherwise."""
    roles = infer_roles(backend)
    if config:
        for role, token in roles_from_config(config).items():
            if token is None:
                roles.pop(role, None)
            else:
                roles[role] = token
    return roles
