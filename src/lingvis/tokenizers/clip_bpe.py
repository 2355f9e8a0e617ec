"""OpenAI CLIP's BPE tokenizer (a diffusers pipeline's `tokenizer/` folder: vocab.json + merges.txt +
CLIPTokenizer config), rebuilt on the `tokenizers` library the way transformers' CLIPTokenizer builds it."""
from __future__ import annotations

from pathlib import Path

import tokenizers as hf_tok
from tokenizers import Regex, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE

from .base import Tokenizer
from .loading import model_max_length, read_config
from .specials import token_content

SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
DEFAULTS = {"bos": "<|startoftext|>", "eos": "<|endoftext|>", "unk": "<|endoftext|>", "pad": "<|endoftext|>"}


def is_clip_folder(folder: Path) -> bool:
    cls = read_config(folder).get("tokenizer_class", "") if folder.is_dir() else ""
    return (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file() and cls.startswith("CLIPTokenizer")


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
    backend = hf_tok.Tokenizer(bpe)
    backend.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                               normalizers.Lowercase()])
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    backend.decoder = decoders.ByteLevel()
    for role in ("bos", "eos"):
        if backend.token_to_id(roles[role]) is None:
            raise ValueError(f"{folder}: the {role} token {roles[role]!r} is not in vocab.json")
    backend.post_processor = processors.RobertaProcessing((roles["eos"], backend.token_to_id(roles["eos"])),
                                                          (roles["bos"], backend.token_to_id(roles["bos"])),
                                                          trim_offsets=False, add_prefix_space=False)
    return Tokenizer(backend, roles, model_max_length=model_max_length(config))
