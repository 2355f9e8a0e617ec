"""Find and read tokenizer files on disk.

Formats, in lookup order: ``tokenizer.json``; Marian ``source.spm`` + ``vocab.json``; GPT-2 ``vocab.json`` +
``merges.txt``; BERT ``vocab.txt``.
Each may sit beside ``tokenizer_config.json`` / ``special_tokens_map.json`` / ``chat_template.jinja``;
``generation_config.json`` (and the model's ``config.json``) supply extra end-of-generation ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tokenizers as hf_tok
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

from lingvis.tokenizers import marian

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_MAP_FILE = "special_tokens_map.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
GENERATION_CONFIG_FILE = "generation_config.json"
MODEL_CONFIG_FILE = "config.json"
GPT2_FILES = ("vocab.json", "merges.txt")
WORDPIECE_FILE = "vocab.txt"
HF_UNKNOWN_MAX_LENGTH = int(1e29)  # HF writes 1e30 when a tokenizer has no length limit


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None


def read_config(folder: Path) -> dict[str, Any]:
    """Merge special_tokens_map.json, tokenizer_config.json and chat_template.jinja from a folder."""
    config: dict[str, Any] = {}
    for name in (SPECIAL_MAP_FILE, CONFIG_FILE):
        path = folder / name
        if path.is_file():
            data = _read_json(path)
            if not isinstance(data, dict):
                raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
            config.update(data)
    template_path = folder / CHAT_TEMPLATE_FILE
    if "chat_template" not in config and template_path.is_file():
        config["chat_template"] = template_path.read_text(encoding="utf-8")
    return config


def model_max_length(config: dict[str, Any]) -> int | None:
    """The config's ``model_max_length`` when it is a real limit, else ``None``."""
    value = config.get("model_max_length")
    if isinstance(value, (int, float)) and 0 < value < HF_UNKNOWN_MAX_LENGTH:
        return int(value)
    return None


def gpt2_backend(vocab_path: Path, merges_path: Path) -> hf_tok.Tokenizer:
    """A GPT-2 style byte-level BPE tokenizer from ``vocab.json`` + ``merges.txt``."""
    try:
        bpe = models.BPE.from_file(str(vocab_path), str(merges_path))
    except Exception as err:  # the Rust loader raises plain Exception with its own message
        raise ValueError(f"cannot read BPE files {vocab_path} + {merges_path}: {err}") from None
    backend = hf_tok.Tokenizer(bpe)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    return backend


def wordpiece_backend(vocab_path: Path, config: dict[str, Any]) -> hf_tok.Tokenizer:
    """A BERT-style WordPiece tokenizer from ``vocab.txt`` (``do_lower_case`` from the config)."""
    try:
        wordpiece = models.WordPiece.from_file(str(vocab_path), unk_token=_token(config, "unk", "[UNK]"))
    except Exception as err:  # the Rust loader raises plain Exception with its own message
        raise ValueError(f"cannot read WordPiece vocabulary {vocab_path}: {err}") from None
    backend = hf_tok.Tokenizer(wordpiece)
    lowercase = bool(config.get("do_lower_case", True))
    backend.normalizer = normalizers.BertNormalizer(
        lowercase=lowercase, strip_accents=config.get("strip_accents"),
        handle_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    cls, sep = _token(config, "cls", "[CLS]"), _token(config, "sep", "[SEP]")
    cls_id, sep_id = backend.token_to_id(cls), backend.token_to_id(sep)
    if cls_id is not None and sep_id is not None:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, cls_id), (sep, sep_id)],
        )
    return backend


def _token(config: dict[str, Any], role: str, default: str) -> str:
    value = config.get(f"{role}_token", default)
    if isinstance(value, dict):
        value = value.get("content", default)
    return value if isinstance(value, str) else default


def _tokenizer_json(path: Path) -> hf_tok.Tokenizer:
    try:
        return hf_tok.Tokenizer.from_file(str(path))
    except Exception as err:  # the Rust loader raises plain Exception with its own message
        raise ValueError(f"{path}: not a readable tokenizers JSON file ({err})") from None


def read_backend(path: str | Path) -> tuple[hf_tok.Tokenizer, dict[str, Any]]:
    """Load the backend tokenizer and its config from a folder or a ``tokenizer.json`` file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"tokenizer path does not exist: {path}")
    if path.is_file():
        if path.name == CONFIG_FILE:
            return read_backend(path.parent)
        return _tokenizer_json(path), read_config(path.parent)
    if (path / TOKENIZER_FILE).is_file():
        return _tokenizer_json(path / TOKENIZER_FILE), read_config(path)
    if marian.is_marian_folder(path):
        config = marian.marian_config(read_config(path))
        return marian.marian_backend(path, config), config
    if all((path / name).is_file() for name in GPT2_FILES):
        return gpt2_backend(path / GPT2_FILES[0], path / GPT2_FILES[1]), read_config(path)
    if (path / WORDPIECE_FILE).is_file():
        config = read_config(path)
        return wordpiece_backend(path / WORDPIECE_FILE, config), config
    present = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "empty folder"
    raise FileNotFoundError(
        f"no loadable tokenizer in {path}: expected {TOKENIZER_FILE}, {marian.SOURCE_SPM} + "
        f"{marian.VOCAB_FILE}, {' + '.join(GPT2_FILES)} "
        f"or {WORDPIECE_FILE} (found: {present})"
    )


def write_config(folder: Path, config: dict[str, Any]) -> None:
    """Write ``tokenizer_config.json`` (sorted keys, UTF-8)."""
    text = json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False)
    (folder / CONFIG_FILE).write_text(text + "\n", encoding="utf-8")


def _folder(path: str | Path) -> Path:
    path = Path(path)
    return path.parent if path.is_file() else path


def generation_eos_ids(path: str | Path) -> list[int]:
    """The ``eos_token_id`` (an int or a list) of ``generation_config.json`` and ``config.json`` beside
    the tokenizer, in that order, without repeats."""
    ids: list[int] = []
    for name in (GENERATION_CONFIG_FILE, MODEL_CONFIG_FILE):
        file = _folder(path) / name
        if not file.is_file():
            continue
        data = _read_json(file)
        value = data.get("eos_token_id") if isinstance(data, dict) else None
        values = value if isinstance(value, list) else [] if value is None else [value]
        for v in values:
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"{file}: eos_token_id must be an int or a list of ints, got {value!r}")
            ids.append(v)
    return list(dict.fromkeys(ids))


def write_generation_eos(folder: Path, eos_ids: list[int]) -> None:
    """Record the end-of-generation ids in ``generation_config.json`` (other keys of an existing file kept)."""
    file = folder / GENERATION_CONFIG_FILE
    data = _read_json(file) if file.is_file() else {}
    if not isinstance(data, dict):
        raise ValueError(f"{file}: expected a JSON object, got {type(data).__name__}")
    data["eos_token_id"] = list(eos_ids)
    file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def add_config_tokens(backend: hf_tok.Tokenizer, config: dict[str, Any]) -> None:
    """Make the added tokens a ``tokenizer_config.json`` lists real tokens of the backend.

    ``added_tokens_decoder`` (``{"id": {"content", "special", ...}}``) entries missing from the backend are
    added, and must land on their stated id; an entry whose content has another id is an error.
    ``additional_special_tokens`` / ``extra_special_tokens`` become special added tokens.
    """
    decoder = config.get("added_tokens_decoder") or {}
    if not isinstance(decoder, dict):
        raise ValueError(f"tokenizer_config.json: added_tokens_decoder must be an object, got {type(decoder).__name__}")
    for key in sorted(decoder, key=lambda k: int(k) if str(k).isdigit() else -1):
        entry = decoder[key]
        if not str(key).isdigit() or not isinstance(entry, dict) or not isinstance(entry.get("content"), str):
            raise ValueError(f"tokenizer_config.json: added_tokens_decoder[{key!r}] must map an id to "
                             f"{{'content': str, ...}}, got {entry!r}")
        want, content = int(key), entry["content"]
        have = backend.token_to_id(content)
        if have is None:
            token = hf_tok.AddedToken(content, special=bool(entry.get("special", False)),
                                      normalized=bool(entry.get("normalized", not entry.get("special", False))),
                                      lstrip=bool(entry.get("lstrip", False)), rstrip=bool(entry.get("rstrip", False)),
                                      single_word=bool(entry.get("single_word", False)))
            if entry.get("special"):
                backend.add_special_tokens([token])
            else:
                backend.add_tokens([token])
            have = backend.token_to_id(content)
        if have != want:
            raise ValueError(f"tokenizer_config.json: added token {content!r} has id {want} there but id {have} "
                             f"in the tokenizer vocabulary of {backend.get_vocab_size()} tokens")
    extra = config.get("additional_special_tokens") or config.get("extra_special_tokens") or []
    if isinstance(extra, dict):  # transformers v5 may write {name: token}
        extra = list(extra.values())
    names = [tok.content for tok in backend.get_added_tokens_decoder().values() if tok.special]
    missing = []
    for value in extra:
        content = value.get("content") if isinstance(value, dict) else value
        if isinstance(content, str) and content not in names:
            missing.append(hf_tok.AddedToken(content, special=True, normalized=False))
    if missing:
        backend.add_special_tokens(missing)
