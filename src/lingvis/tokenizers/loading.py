"""Find and read tokenizer files on disk.

Formats, in lookup order: ``tokenizer.json``; Marian ``source.spm`` + ``vocab.json``; GPT-2 ``vocab.json`` +
``merges.txt``; BERT ``vocab.txt``.
Each may sit beside ``tokenizer_config.json`` / ``special_tokens_map.json`` / ``chat_template.jinja``.
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
