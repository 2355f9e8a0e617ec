"""OpenAI CLIP's BPE tokenizer (a diffusers pipeline's `tokenizer/` folder: vocab.json + merges.txt +
CLIPTokenizer config), rebuilt on the `tokenizers` library the way transformers' CLIPTokenizer builds it."""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import tokenizers as hf_tok
from tokenizers import Regex, decoders, normalizers, pre_tokenizers, processors, trainers
from tokenizers.models import BPE

from .base import Tokenizer
from .loading import model_max_length, read_config
from .specials import token_content

SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
DEFAULTS = {"bos": "<|startoftext|>", "eos": "<|endoftext|>", "unk": "<|endoftext|>", "pad": "<|endoftext|>"}


def is_clip_folder(folder: Path) -> bool:
    cls = read_config(folder).get("tokenizer_class", "") if folder.is_dir() else ""
    return (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file() and cls.startswith("CLIPTokenizer")


def _with_clip_text_rules(backend: hf_tok.Tokenizer) -> hf_tok.Tokenizer:
    """CLIP's normalizer (NFC, collapsed whitespace, lower case) and pre-tokenizer (its split, then bytes)."""
    backend.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                               normalizers.Lowercase()])
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    return backend


def train_clip_bpe(texts: Iterable[str], vocab_size: int, folder: str | Path, *,
                   model_max_length: int = 77) -> Path:
    """Train a CLIP-style BPE (end-of-word `</w>`) on ``texts`` and write a `CLIPTokenizer` folder.

    The folder (vocab.json, merges.txt, tokenizer_config.json) loads with `load_clip_bpe` and with
    transformers' `CLIPTokenizer`; like CLIP's vocabulary it holds every single byte symbol also with `</w>`.
    """
    if vocab_size < 2:
        raise ValueError(f"vocab_size={vocab_size} is too small for a CLIP BPE")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    backend = _with_clip_text_rules(hf_tok.Tokenizer(BPE(continuing_subword_prefix="", end_of_word_suffix="</w>",
                                                         unk_token=DEFAULTS["unk"])))
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, end_of_word_suffix="</w>", show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[DEFAULTS["bos"], DEFAULTS["eos"]])
    backend.train_from_iterator(texts, trainer)
    backend.model.save(str(folder))
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    for piece in list(vocab):
        if len(piece) == 1 and piece + "</w>" not in vocab:
            vocab[piece + "</w>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "CLIPTokenizer",
                                                              "model_max_length": model_max_length}))
    return folder


def load_clip_bpe(folder: str | Path) -> Tokenizer:
    folder = Path(folder)
    config = read_config(folder)
    roles = {r: token_content(config.get(f"{r}_token")) or d for r, d in DEFAULTS.items()}
    try:
        bpe = BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt"), dropout=None,
                            continuing_subword_prefix="", end_of_word_suffix="</w>", fuse_unk=False,
                            unk_token=roles["unk"])
    except Exception as err:  # the Rust loader raises plain Exception
        raise ValueError(f"cannot read CLIP BPE files in {folder}: {err}") from None
    backend = _with_clip_text_rules(hf_tok.Tokenizer(bpe))
    backend.decoder = decoders.ByteLevel()
    for role in ("bos", "eos"):
        if backend.token_to_id(roles[role]) is None:
            raise ValueError(f"{folder}: the {role} token {roles[role]!r} is not in vocab.json")
    backend.post_processor = processors.RobertaProcessing((roles["eos"], backend.token_to_id(roles["eos"])),
                                                          (roles["bos"], backend.token_to_id(roles["bos"])),
                                                          trim_offsets=False, add_prefix_space=False)
    return Tokenizer(backend, roles, model_max_length=model_max_length(config))
