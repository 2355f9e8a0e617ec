"""Read a llama.cpp GGUF file (architectures gpt2, llama, qwen2, qwen3) into a lingvis GPT.

Tensors are dequantised to fp32 with the `gguf` package (f32, f16, bf16, q8_0 and the other types it can
dequantise); q/k rows of the `llama` architecture are permuted back to the rotate-half layout. The config
comes from the `lingvis.config` key when lingvis wrote the file (checked against llama.cpp's keys), else from
llama.cpp's keys alone.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from .._optional import require
from ..io import CheckpointError
from ..models.gpt import GPT, GPTConfig
from .gguf_export import CONFIG_KEY
from .gguf_layout import LLAMA_ARCHS, arch_of, slots, unpermute
from .llama import build_empty

ARCHS = ("gpt2", *sorted(set(LLAMA_ARCHS.values())))


class _Meta:
    """Typed access to a GGUF file's key/value fields; errors name the file and the key."""

    def __init__(self, reader, path: Path):
        self.fields, self.path = reader.fields, path

    def get(self, key: str, default=None):
        f = self.fields.get(key)
        return default if f is None else f.contents()

    def need(self, key: str):
        value = self.get(key)
        if value is None:
            raise CheckpointError(f"{self.path}: GGUF key {key!r} is missing")
        return value


def _config_from_keys(meta: _Meta, arch: str, shapes: dict[str, tuple[int, ...]]) -> GPTConfig:
    a = arch
    vocab = shapes["token_embd.weight"][0]
    common = dict(vocab_size=vocab, block_size=int(meta.need(f"{a}.context_length")),
                  n_layer=int(meta.need(f"{a}.block_count")), n_head=int(meta.need(f"{a}.attention.head_count")),
                  n_embd=int(meta.need(f"{a}.embedding_length")), dropout=0.0,
                  tie_embeddings="output.weight" not in shapes)
    ff = int(meta.need(f"{a}.feed_forward_length"))
    if arch == "gpt2":
        return GPTConfig(**common, mlp_ratio=ff / common["n_embd"], activation="gelu_tanh",
                         norm_eps=float(meta.need(f"{a}.attention.layer_norm_epsilon")))
    if "rope_freqs.weight" in shapes:
        raise CheckpointError(f"{meta.path}: a rope_freqs tensor (llama3 rope scaling) without {CONFIG_KEY!r}: "
                              "its scaling fields cannot be recovered from the frequencies")
    scaling = None
    kind = meta.get(f"{a}.rope.scaling.type")
    if kind == "linear":
        scaling = {"rope_type": "linear", "factor": float(meta.need(f"{a}.rope.scaling.factor"))}
    elif kind == "yarn":
        scaling = {"rope_type": "yarn", "factor": float(meta.need(f"{a}.rope.scaling.factor")),
                   "original_max_position_embeddings": int(meta.need(f"{a}.rope.scaling.original_context_length"))}
        for field, key in (("attention_factor", "yarn_attn_factor"), ("beta_fast", "yarn_beta_fast"),
                           ("beta_slow", "yarn_beta_slow")):
            if meta.get(f"{a}.rope.scaling.{key}") is not None:
                scaling[field] = float(meta.get(f"{a}.rope.scaling.{key}"))
    elif kind not in (None, "none"):
        raise CheckpointError(f"{meta.path}: {a}.rope.scaling.type {kind!r} is not supported")
    window = meta.get(f"{a}.attention.sliding_window")
    head_dim = meta.get(f"{a}.attention.key_length")
    return GPTConfig(**common, mlp_hidden=ff, norm="rmsnorm", activation="swiglu", position="rotary", bias=False,
                     norm_eps=float(meta.need(f"{a}.attention.layer_norm_rms_epsilon")),
                     rope_theta=float(meta.get(f"{a}.rope.freq_base", 10000.0)), rope_scaling=scaling,
                     n_kv_head=int(meta.get(f"{a}.attention.head_count_kv", common["n_head"])),
                     head_dim=int(head_dim) if head_dim else None,
                     qkv_bias="blk.0.attn_q.bias" in shapes, attn_out_bias="blk.0.attn_output.bias" in shapes,
                     mlp_bias="blk.0.ffn_gate.bias" in shapes, qk_norm="blk.0.attn_q_norm.weight" in shapes,
                     sliding_window=int(window) if window else None)


def _config(meta: _Meta, arch: str, shapes: dict[str, tuple[int, ...]]) -> GPTConfig:
    from_keys = _config_from_keys(meta, arch, {k: v for k, v in shapes.items() if k != "rope_freqs.weight"}
                                  if meta.get(CONFIG_KEY) else shapes)
    stored = meta.get(CONFIG_KEY)
    if not stored:
        return from_keys
    try:
        cfg = GPTConfig(**json.loads(stored))
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{meta.path}: corrupt {CONFIG_KEY}: {e}") from e
    for field in ("vocab_size", "n_layer", "n_head", "n_embd", "block_size", "n_kv_head", "head_size"):
        mine, theirs = getattr(cfg, field), getattr(from_keys, field)
        if field == "n_kv_head":
            mine, theirs = mine or cfg.n_head, theirs or from_keys.n_head
        if mine != theirs:
            raise CheckpointError(f"{meta.path}: {CONFIG_KEY} says {field}={mine} but the GGUF keys/tensors say "
                                  f"{theirs}")
    return cfg


def load_gguf_tokenizer(path: str | os.PathLike):
    """The lingvis `Tokenizer` stored in a GGUF file (byte-level BPE vocabularies)."""
    from .gguf_vocab import tokenizer_from_gguf

    gguf = require("gguf", "GGUF files")
    path = Path(path)
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable GGUF file ({e})") from e
    fields = {k: f.contents() for k, f in reader.fields.items() if k.startswith("tokenizer.")}
    if "tokenizer.ggml.tokens" not in fields:
        raise CheckpointError(f"{path}: the GGUF file holds no vocabulary (tokenizer.ggml.tokens)")
    return tokenizer_from_gguf(fields, path)


def load_gguf(path: str | os.PathLike) -> GPT:
    """A lingvis GPT (eval mode, fp32) from a GGUF file."""
    gguf = require("gguf", "GGUF files")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"GGUF file not found: {path}")
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable GGUF file ({e})") from e
    meta = _Meta(reader, path)
    arch = meta.need("general.architecture")
    if arch not in ARCHS:
        raise CheckpointError(f"{path}: GGUF architecture {arch!r} is not supported; lingvis reads {', '.join(ARCHS)}")
    tensors = {t.name: t for t in reader.tensors}
    shapes = {n: tuple(int(d) for d in reversed(t.shape.tolist())) for n, t in tensors.items()}
    if "token_embd.weight" not in shapes:
        raise CheckpointError(f"{path}: tensor 'token_embd.weight' is missing")
    cfg = _config(meta, arch, shapes)
    if arch_of(cfg) != arch:
        raise CheckpointError(f"{path}: its config maps to the {arch_of(cfg)} architecture, not {arch}")
    model = build_empty(cfg)
    own = model.state_dict()
    plan = slots(cfg, arch)
    expected = {s.gguf for s in plan} | {"rope_freqs.weight"}
    extra = sorted(set(tensors) - expected)
    if extra:
        raise CheckpointError(f"{path}: unexpected tensor(s) {extra[:5]} for architecture {arch}")
    with torch.no_grad():
        for s in plan:
            t = tensors.get(s.gguf)
            if t is None:
                raise CheckpointError(f"{path}: tensor {s.gguf!r} is missing")
            try:
                data = gguf.quants.dequantize(t.data, t.tensor_type)
            except NotImplementedError as e:
                raise CheckpointError(f"{path}: tensor {s.gguf!r} has type {t.tensor_type.name}, which cannot be "
                                      "dequantised") from e
            target = own[s.ours] if s.rows is None else own[s.ours][s.rows[0]:s.rows[1]]
            w = torch.from_numpy(np.array(data, dtype=np.float32))  # a writable copy
            if tuple(w.shape) != tuple(target.shape):
                raise CheckpointError(f"{path}: tensor {s.gguf!r} has shape {tuple(w.shape)}, expected "
                                      f"{tuple(target.shape)} for {s.ours}")
            target.copy_(unpermute(w, s.heads) if s.heads is not None else w)
    return model.eval()
