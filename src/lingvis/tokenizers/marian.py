"""Marian (opus-mt) tokenizer folders: ``source.spm`` + ``vocab.json`` as a ``tokenizers`` Unigram pipeline.

Encodes like transformers' ``MarianTokenizer`` (SentencePiece segmentation with the source model's
normaliser and scores, pieces mapped through ``vocab.json``, ``</s>`` appended by the post-processor)
and decodes like its ``decode(ids, skip_special_tokens=True)``; the backend saves as ``tokenizer.json``.
Known differences, all outside ordinary text: a language code like ``>>fr<<`` is recognised anywhere,
not only at the start of the text; a run of characters that ``source.spm`` lacks is one id in Marian
(the run looked up in ``vocab.json``, else ``<unk>``), here each ``vocab.json`` piece in it keeps its
id; pieces of ``source.spm`` missing from ``vocab.json`` are left out of segmentation (Marian: ``<unk>``);
segmentations with exactly equal scores may be broken differently (float32 sums in SentencePiece).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import tokenizers as hf_tok
from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors

from lingvis.tokenizers.specials import token_content
from lingvis.tokenizers.spm import NORMAL, UNIGRAM, USER_DEFINED, SpmModel, read_spm

SOURCE_SPM, VOCAB_FILE = "source.spm", "vocab.json"
DEFAULTS = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "model_max_length": 512}
SPACE = "▁"
EDGE_WHITESPACE = r"\A[\s\x1c-\x1f]+|[\s\x1c-\x1f]+\z"  # what Python's str.strip() removes
UNREACHABLE = 1e6  # score gap that keeps pieces absent from source.spm out of every segmentation


def is_marian_folder(folder: Path) -> bool:
    return (folder / SOURCE_SPM).is_file() and (folder / VOCAB_FILE).is_file()


def read_vocab(path: Path) -> list[str]:
    """``vocab.json`` (piece -> id, ids 0..n-1) as a list of pieces in id order."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: invalid JSON ({err})") from None
    if not isinstance(data, dict) or not data or not all(isinstance(i, int) for i in data.values()):
        raise ValueError(f"{path}: expected a non-empty JSON object mapping pieces to integer ids")
    pieces = sorted(data, key=data.__getitem__)
    if [data[p] for p in pieces] != list(range(len(pieces))):
        raise ValueError(f"{path}: ids must be 0..{len(data) - 1}, each used once")
    return pieces


def _scores(vocab: list[str], spm: SpmModel, folder: Path) -> list[tuple[str, float]]:
    """Unigram (piece, score) per vocab id: the source model's score for its pieces, an unreachable one
    for the rest (specials, language codes, target-only pieces; specials are matched as added tokens)."""
    known = {piece: score for piece, score, kind in spm.pieces if kind in (NORMAL, USER_DEFINED)}
    floor = min(known.values(), default=0.0) - UNREACHABLE
    missing = len(known.keys() - set(vocab))
    if missing:
        warnings.warn(f"{folder}: {missing} pieces of {SOURCE_SPM} are not in {VOCAB_FILE}; MarianTokenizer "
                      "maps them to <unk>, here they are left out of segmentation", stacklevel=2)
    return [(piece, known.get(piece, floor)) for piece in vocab]


def _normalizer(spm: SpmModel, path: Path) -> normalizers.Normalizer:
    """SentencePiece's normalisation: charsmap (e.g. nmt_nfkc), extra spaces removed, spaces escaped."""
    steps: list[normalizers.Normalizer] = []
    if spm.precompiled_charsmap:
        try:
            steps.append(normalizers.Precompiled(spm.precompiled_charsmap))
        except Exception as err:  # the Rust side raises plain Exception
            raise ValueError(f"{path}: not a readable SentencePiece model ({err})") from None
    if spm.remove_extra_whitespaces:
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""), normalizers.Replace(Regex(" {2,}"), " ")]
    steps.append(normalizers.Replace(" ", SPACE))
    if spm.add_dummy_prefix:  # Metaspace adds no prefix to a text that starts with "▁"; SentencePiece does
        steps.append(normalizers.Replace(Regex(rf"\A{SPACE}"), SPACE * 2))
    return normalizers.Sequence(steps)


def marian_backend(folder: Path, config: dict[str, Any]) -> hf_tok.Tokenizer:
    """The backend of a Marian folder (shared vocabulary); ``config`` gives the eos token."""
    if config.get("separate_vocabs"):
        raise ValueError(f"{folder}: Marian tokenizers with separate_vocabs=True are not supported")
    spm = read_spm(folder / SOURCE_SPM)
    if spm.model_type != UNIGRAM or spm.treat_whitespace_as_suffix or not spm.escape_whitespaces \
            or spm.byte_fallback:
        raise ValueError(f"{folder / SOURCE_SPM}: only unigram SentencePiece models without byte fallback "
                         "or whitespace-suffix pieces are supported")
    vocab = read_vocab(folder / VOCAB_FILE)
    ids = {piece: i for i, piece in enumerate(vocab)}
    unk, eos = token_content(config["unk_token"]), token_content(config["eos_token"])
    for token in (unk, eos):
        if token not in ids:
            raise ValueError(f"{folder / VOCAB_FILE}: special token {token!r} is missing")
    backend = hf_tok.Tokenizer(models.Unigram(_scores(vocab, spm, folder), unk_id=ids[unk]))
    backend.normalizer = _normalizer(spm, folder / SOURCE_SPM)
    if spm.add_dummy_prefix:
        backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always", split=False)
    backend.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.Fuse(),
                                         decoders.Replace(Regex(EDGE_WHITESPACE), "")])
    backend.post_processor = processors.TemplateProcessing(single=f"$A {eos}", pair=f"$A $B {eos}",
                                                           special_tokens=[(eos, ids[eos])])
    codes = [piece for piece in vocab if piece.startswith(">>") and piece.endswith("<<")]  # as MarianTokenizer
    backend.add_tokens([hf_tok.AddedToken(code, special=False, normalized=False) for code in codes])
    return backend


def marian_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with MarianTokenizer's defaults for what it leaves out."""
    return {**DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
