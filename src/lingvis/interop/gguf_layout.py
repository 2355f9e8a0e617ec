"""Where each lingvis GPT weight lives in a llama.cpp GGUF file: architecture choice and tensor names.

Architectures: `gpt2` (learned positions, LayerNorm, GELU-tanh MLP, fused `attn_qkv`), and the Llama family
`llama` (Llama, Mistral), `qwen2` (q/k/v bias), `qwen3` (per-head q/k RMSNorm): RMSNorm, SwiGLU, rotary,
separate `attn_q/k/v` and `ffn_gate/up`. llama.cpp's `llama` graph rotates adjacent pairs of each head
(x[2i], x[2i+1]), while transformers and lingvis rotate halves (x[i], x[i + D/2]); llama.cpp's converter
therefore permutes the rows of q and k (`permute`), which maps each half pair onto an adjacent pair. The
permutation is applied to queries and keys alike, so attention scores are unchanged. `qwen2`/`qwen3` use
the rotate-half ("NEOX") convention in llama.cpp and are written unpermuted.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..io import CheckpointError
from ..models.gpt import GPTConfig
from .gpt2 import exportable as gpt2_exportable
from .llama import hf_model_type

LLAMA_ARCHS = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}
PERMUTED_ARCHS = ("llama",)  # interleaved-pair rope in llama.cpp


@dataclass(frozen=True)
class Slot:
    """One GGUF tensor: rows `rows` (start, stop) of our `ours` (whole tensor when None); `heads`: permute its
    rows for llama.cpp's interleaved rope, in groups of this many heads."""
    gguf: str
    ours: str
    rows: tuple[int, int] | None = None
    heads: int | None = None


def permute(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows of each head reordered from halves (i, i + D/2) to adjacent pairs (2i, 2i + 1)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def unpermute(w: torch.Tensor, heads: int) -> torch.Tensor:
    """The inverse of `permute`."""
    return w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def arch_of(cfg: GPTConfig) -> str:
    """The llama.cpp architecture of a GPT config; a CheckpointError names what has no counterpart."""
    if cfg.cross_attention:
        raise CheckpointError("GGUF export: a GPT with cross-attention has no llama.cpp architecture")
    if cfg.token_shift:
        raise CheckpointError("GGUF export: the causal token shift (token_shift) has no llama.cpp counterpart")
    if cfg.position == "learned":
        if not gpt2_exportable(cfg):
            raise CheckpointError("GGUF export: this learned-position GPT is not GPT-2 shaped (LayerNorm, biases, "
                                  "no GQA) and has no llama.cpp architecture")
        if cfg.activation != "gelu_tanh":
            raise CheckpointError(f"GGUF export: llama.cpp's gpt2 graph uses GELU (tanh); activation "
                                  f"{cfg.activation!r} has no counterpart")
        return "gpt2"
    kind = hf_model_type(cfg)
    if kind is None:
        raise CheckpointError("GGUF export: this GPT config (position, norm, biases) matches no llama.cpp "
                              "architecture; supported: GPT-2 and the Llama family (llama, mistral, qwen2, qwen3)")
    if cfg.activation != "swiglu":
        raise CheckpointError(f"GGUF export: llama.cpp's {LLAMA_ARCHS[kind]} graph uses SwiGLU; activation "
                              f"{cfg.activation!r} has no counterpart")
    scaling = (cfg.rope_scaling or {}).get("rope_type")
    if scaling == "dynamic":
        raise CheckpointError("GGUF export: rope_scaling type 'dynamic' (NTK) has no llama.cpp counterpart")
    if kind == "qwen3" and cfg.block_config().qkv_bias:
        raise CheckpointError("GGUF export: llama.cpp's qwen3 graph has no attention biases")
    return LLAMA_ARCHS[kind]


def _gpt2_slots(cfg: GPTConfig) -> list[Slot]:
    out = [Slot("token_embd.weight", "wte.weight"), Slot("position_embd.weight", "wpe.weight"),
           Slot("output_norm.weight", "ln_f.weight"), Slot("output_norm.bias", "ln_f.bias")]
    if not cfg.tie_embeddings:
        out.append(Slot("output.weight", "lm_head.weight"))
    names = {"attn_norm": "ln_1", "attn_qkv": "attn.qkv", "attn_output": "attn.proj", "ffn_norm": "ln_2",
             "ffn_up": "mlp.fc", "ffn_down": "mlp.proj"}
    for i in range(cfg.n_layer):
        for theirs, ours in names.items():
            for kind in ("weight", "bias"):
                out.append(Slot(f"blk.{i}.{theirs}.{kind}", f"blocks.{i}.{ours}.{kind}"))
    return out


def _llama_slots(cfg: GPTConfig, arch: str) -> list[Slot]:
    bc = cfg.block_config()
    H, KV, D = cfg.n_head, cfg.n_kv_head or cfg.n_head, cfg.head_size
    hidden = bc.mlp_hidden
    q, k = (H, KV) if arch in PERMUTED_ARCHS else (None, None)
    out = [Slot("token_embd.weight", "wte.weight"), Slot("output_norm.weight", "ln_f.weight")]
    if not cfg.tie_embeddings:
        out.append(Slot("output.weight", "lm_head.weight"))
    for i in range(cfg.n_layer):
        b, p = f"blk.{i}.", f"blocks.{i}."
        kinds = ("weight", "bias") if bc.qkv_bias else ("weight",)
        out.append(Slot(b + "attn_norm.weight", p + "ln_1.weight"))
        for kind in kinds:
            out += [Slot(b + f"attn_q.{kind}", p + f"attn.qkv.{kind}", (0, H * D), q),
                    Slot(b + f"attn_k.{kind}", p + f"attn.qkv.{kind}", (H * D, (H + KV) * D), k),
                    Slot(b + f"attn_v.{kind}", p + f"attn.qkv.{kind}", ((H + KV) * D, (H + 2 * KV) * D))]
        out.append(Slot(b + "attn_output.weight", p + "attn.proj.weight"))
        if bc.attn_out_bias:
            out.append(Slot(b + "attn_output.bias", p + "attn.proj.bias"))
        if cfg.qk_norm:
            out += [Slot(b + "attn_q_norm.weight", p + "attn.q_norm.weight"),
                    Slot(b + "attn_k_norm.weight", p + "attn.k_norm.weight")]
        out.append(Slot(b + "ffn_norm.weight", p + "ln_2.weight"))
        for kind in (("weight", "bias") if bc.mlp_bias else ("weight",)):
            out += [Slot(b + f"ffn_gate.{kind}", p + f"mlp.fc.{kind}", (0, hidden)),
                    Slot(b + f"ffn_up.{kind}", p + f"mlp.fc.{kind}", (hidden, 2 * hidden)),
                    Slot(b + f"ffn_down.{kind}", p + f"mlp.proj.{kind}")]
    return out


def slots(cfg: GPTConfig, arch: str) -> list[Slot]:
    """Every weight tensor of the GGUF file for `cfg` (extra tensors such as `rope_freqs` excluded)."""
    return _gpt2_slots(cfg) if arch == "gpt2" else _llama_slots(cfg, arch)


def llama3_rope_factors(cfg: GPTConfig) -> torch.Tensor | None:
    """(D/2,) frequency divisors llama.cpp reads from `rope_freqs.weight` for llama3 rope scaling (None for
    other types): llama.cpp divides each base frequency by its factor."""
    s = cfg.rope_scaling
    if not s or s["rope_type"] != "llama3":
        return None
    from ..nn.position import rope_frequencies

    base, _ = rope_frequencies(cfg.head_size, cfg.rope_theta, None)
    scaled, _ = rope_frequencies(cfg.head_size, cfg.rope_theta, s)
    return (base / scaled).float()  # (D/2,)
