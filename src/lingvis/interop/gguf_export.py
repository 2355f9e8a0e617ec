"""Write a lingvis GPT (GPT-2 or Llama family) as a llama.cpp GGUF file, with the `gguf` package.

Metadata follows llama.cpp's `convert_hf_to_gguf.py`: architecture, block count, context / embedding /
feed-forward lengths, head counts (kv included), key/value lengths, rope base and scaling, norm epsilon,
file type, the tokenizer (`gguf_vocab.py`) and its chat template. Tensor types follow it too: 1-D tensors,
norms and GPT-2's position table stay f32; the other matrices take `dtype` (f32, f16 or q8_0; a q8_0 matrix
whose rows are not a multiple of 32 falls back to f16, as in llama.cpp). The file is written next to its
destination and renamed into place. The full lingvis config is stored as `lingvis.config` (JSON) so that
`lingvis.load(file.gguf)` rebuilds details llama.cpp's keys cannot hold (llama3 rope-scaling fields,
per-layer sliding windows).

llama.cpp's `llama` and `qwen2` graphs attend to the whole context: a sliding window (Mistral) is recorded
in the metadata, but llama.cpp's output differs from the model's once a sequence is longer than the window.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .._optional import require
from ..io import CheckpointError
from ..models.gpt import GPT, GPTConfig
from .gguf_layout import arch_of, llama3_rope_factors, permute, slots
from .gguf_vocab import vocab_from_tokenizer, write_vocab

DTYPES = ("f32", "f16", "q8_0")
FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7}  # gguf.LlamaFileType
Q8_BLOCK = 32
CONFIG_KEY = "lingvis.config"


def hparams(cfg: GPTConfig, arch: str) -> list[tuple[str, str, object]]:
    """(key, GGUF value type, value) of the architecture's hyper-parameters."""
    a = arch
    out = [(f"{a}.block_count", "u32", cfg.n_layer), (f"{a}.context_length", "u32", cfg.block_size),
           (f"{a}.embedding_length", "u32", cfg.n_embd),
           (f"{a}.feed_forward_length", "u32", cfg.block_config().mlp_hidden),
           (f"{a}.attention.head_count", "u32", cfg.n_head), (f"{a}.vocab_size", "u32", cfg.vocab_size)]
    if arch == "gpt2":
        return out + [(f"{a}.attention.layer_norm_epsilon", "f32", cfg.norm_eps)]
    out += [(f"{a}.attention.head_count_kv", "u32", cfg.n_kv_head or cfg.n_head),
            (f"{a}.attention.key_length", "u32", cfg.head_size),
            (f"{a}.attention.value_length", "u32", cfg.head_size),
            (f"{a}.rope.dimension_count", "u32", cfg.head_size), (f"{a}.rope.freq_base", "f32", cfg.rope_theta),
            (f"{a}.attention.layer_norm_rms_epsilon", "f32", cfg.norm_eps)]
    s = cfg.rope_scaling or {}
    kind = s.get("rope_type")
    if kind == "linear":
        out += [(f"{a}.rope.scaling.type", "str", "linear"), (f"{a}.rope.scaling.factor", "f32", s["factor"])]
    elif kind == "yarn":
        out += [(f"{a}.rope.scaling.type", "str", "yarn"), (f"{a}.rope.scaling.factor", "f32", s["factor"]),
                (f"{a}.rope.scaling.original_context_length", "u32",
                 s.get("original_max_position_embeddings") or cfg.block_size)]
        for field, key in (("attention_factor", "yarn_attn_factor"), ("beta_fast", "yarn_beta_fast"),
                           ("beta_slow", "yarn_beta_slow")):
            if s.get(field) is not None:
                out.append((f"{a}.rope.scaling.{key}", "f32", s[field]))
    if cfg.sliding_window is not None:
        out.append((f"{a}.attention.sliding_window", "u32", cfg.sliding_window))
    return out


def _add(writer, key: str, kind: str, value) -> None:
    {"u32": writer.add_uint32, "f32": writer.add_float32, "str": writer.add_string,
     "bool": writer.add_bool}[kind](key, value)


def _tensor_type(name: str, t: torch.Tensor, dtype: str) -> str:
    """The GGUF type of one tensor, as llama.cpp's converter picks it."""
    if t.dim() <= 1 or name.endswith("_norm.weight") or name == "position_embd.weight":
        return "f32"
    if dtype == "q8_0" and t.shape[-1] % Q8_BLOCK:
        return "f16"
    return dtype


def _encode(t: torch.Tensor, kind: str, gguf) -> tuple[np.ndarray, object]:
    """(array to write, raw GGML type) of a float tensor in GGUF type `kind`."""
    a = t.detach().to(torch.float32).contiguous().cpu().numpy()
    if kind == "f32":
        return a, gguf.GGMLQuantizationType.F32
    if kind == "f16":
        return a.astype(np.float16), gguf.GGMLQuantizationType.F16
    return gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0


def gguf_tensors(model: GPT, arch: str):
    """Yield (GGUF name, float tensor) for every tensor of the file, q/k rows permuted where llama.cpp
    expects it."""
    cfg = model.config
    own = model.state_dict()
    factors = llama3_rope_factors(cfg) if arch != "gpt2" else None
    if factors is not None:
        yield "rope_freqs.weight", factors
    for s in slots(cfg, arch):
        t = own[s.ours]
        if s.rows is not None:
            t = t[s.rows[0]:s.rows[1]]
        if s.heads is not None:
            t = permute(t, s.heads)
        yield s.gguf, t


def export_gguf(model: GPT, path: str | os.PathLike, tokenizer=None, dtype: str = "f32",
                name: str | None = None) -> Path:
    """Write `model` (and its tokenizer, when given) to the GGUF file `path`; returns the path."""
    gguf = require("gguf", "GGUF export")
    if dtype not in DTYPES:
        raise ValueError(f"GGUF dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if not isinstance(model, GPT):
        raise CheckpointError(f"GGUF export supports the GPT family (GPT-2, Llama, Mistral, Qwen2/3); got "
                              f"{type(model).__name__}")
    cfg = model.config
    arch = arch_of(cfg)
    if cfg.sliding_window is not None:
        warnings.warn(f"llama.cpp's {arch} graph ignores the sliding window ({cfg.sliding_window}): its output "
                      "differs from this model's on sequences longer than the window", stacklevel=2)
    vocab = vocab_from_tokenizer(tokenizer, cfg.vocab_size) if tokenizer is not None else None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        writer.add_name(name or path.stem)
        for key, kind, value in hparams(cfg, arch):
            _add(writer, key, kind, value)
        writer.add_file_type(FILE_TYPES[dtype])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_string(CONFIG_KEY, json.dumps(dataclasses.asdict(cfg)))
        if vocab is not None:
            write_vocab(writer, vocab)
        else:  # llama.cpp then runs on token ids only (vocab_size dummy tokens)
            writer.add_tokenizer_model("none")
        with torch.no_grad():
            for tname, t in gguf_tensors(model, arch):
                data, raw = _encode(t, _tensor_type(tname, t, dtype), gguf)
                writer.add_tensor(tname, data, raw_dtype=raw)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
