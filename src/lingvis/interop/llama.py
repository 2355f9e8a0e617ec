"""Llama-family decoders <-> lingvis GPT: HF `LlamaForCausalLM`, `MistralForCausalLM`, `Qwen2ForCausalLM`,
`Qwen3ForCausalLM` (model_type llama / mistral / qwen2 / qwen3).

They are the GPT family with RMSNorm, SwiGLU, rotary positions and no biases, plus per-family options of the
shared attention: grouped-query heads, a head width of its own, q/k/v biases (Qwen2), per-head q/k RMSNorm
(Qwen3), sliding windows (Mistral, Qwen2/3 with `use_sliding_window`) and every `rope_scaling` type.
HF's separate q/k/v projections are fused into our `attn.qkv` (queries, keys, values) and gate/up into
`mlp.fc` (gate, up). Tensors are copied one at a time from memory-mapped safetensors into a model built
without initialisation, so loading holds one copy of the weights (plus one tensor in flight).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..io import CheckpointError
from ..models.gpt import GPT, GPTConfig
from .registry import register_exporter, register_loader

MODEL_TYPES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
               "qwen3": "Qwen3ForCausalLM"}
ACTIVATIONS = {"silu": "swiglu", "swish": "swiglu", "gelu": "geglu"}
# config keys we read, or know to be irrelevant to the forward pass; any other key with a non-default value
# that changes the computation is refused by name in `_check_unsupported`
UNSUPPORTED = {"pretraining_tp": 1, "partial_rotary_factor": 1.0, "attn_logit_softcapping": None,
               "final_logit_softcapping": None, "logits_scaling": None, "no_rope_layers": None}


def _rope(hf: dict, path: Path) -> tuple[float, dict | None]:
    """(rope_theta, rope_scaling) from either the legacy keys (`rope_theta`, `rope_scaling`) or transformers
    5's `rope_parameters`."""
    params = hf.get("rope_parameters") or {}
    legacy = hf.get("rope_scaling") or {}
    if params and "full_attention" in params:  # per-layer-type parameters: only one set is supported
        raise CheckpointError(f"{path / 'config.json'}: per-layer-type rope_parameters are not supported")
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    scaling = {k: v for k, v in {**legacy, **params}.items() if k != "rope_theta"}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default" and len(set(scaling) - {"rope_type", "type"}) == 0:
        return float(theta), None
    return float(theta), scaling


def _check_unsupported(hf: dict, path: Path) -> None:
    for key, default in UNSUPPORTED.items():
        if key in hf and hf[key] not in (default, None):
            raise CheckpointError(f"{path / 'config.json'}: {key}={hf[key]!r} is not supported by lingvis")
    act = hf.get("hidden_act", "silu")
    if act not in ACTIVATIONS:
        raise CheckpointError(f"{path / 'config.json'}: hidden_act {act!r} is not supported; known: "
                              f"{sorted(ACTIVATIONS)}")


def config_from_hf(hf: dict, path: Path) -> GPTConfig:
    kind = hf.get("model_type")
    _check_unsupported(hf, path)
    n_layer, n_head = hf["num_hidden_layers"], hf["num_attention_heads"]
    dim = hf["hidden_size"]
    theta, scaling = _rope(hf, path)
    attn_bias = bool(hf.get("attention_bias", False))
    window = hf.get("sliding_window")
    layer_types = hf.get("layer_types")
    if kind in ("qwen2", "qwen3"):
        if not hf.get("use_sliding_window", False):
            window = None
        elif layer_types is None:
            first = hf.get("max_window_layers", n_layer)
            layer_types = ["sliding_attention" if i >= first else "full_attention" for i in range(n_layer)]
    if window is None:
        layer_types = None
    elif layer_types is not None and all(t == "sliding_attention" for t in layer_types):
        layer_types = None
    try:
        return GPTConfig(
            vocab_size=hf["vocab_size"], block_size=hf.get("max_position_embeddings", 2048), n_layer=n_layer,
            n_head=n_head, n_embd=dim, mlp_hidden=hf["intermediate_size"],
            activation=ACTIVATIONS[hf.get("hidden_act", "silu")], norm="rmsnorm",
            norm_eps=hf.get("rms_norm_eps", 1e-6), position="rotary", rope_theta=theta, rope_scaling=scaling,
            bias=False, qkv_bias=True if kind == "qwen2" else attn_bias, attn_out_bias=attn_bias,
            mlp_bias=bool(hf.get("mlp_bias", False)), n_kv_head=hf.get("num_key_value_heads") or n_head,
            head_dim=hf.get("head_dim") or dim // n_head, qk_norm=kind == "qwen3",
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)), sliding_window=window,
            layer_types=layer_types, dropout=0.0)
    except (KeyError, ValueError) as e:
        name = e.args[0] if isinstance(e, KeyError) else e
        raise CheckpointError(f"{path / 'config.json'}: {name}" + (" is missing" if isinstance(e, KeyError) else "")) \
            from e


def _block_map(i: int, cfg: GPTConfig) -> list[tuple[str, list[str]]]:
    """(our key, HF keys concatenated into it along dim 0) for layer i."""
    p = f"model.layers.{i}."
    out = [(f"blocks.{i}.ln_1.weight", [p + "input_layernorm.weight"]),
           (f"blocks.{i}.attn.qkv.weight", [p + f"self_attn.{x}_proj.weight" for x in "qkv"]),
           (f"blocks.{i}.attn.proj.weight", [p + "self_attn.o_proj.weight"]),
           (f"blocks.{i}.ln_2.weight", [p + "post_attention_layernorm.weight"]),
           (f"blocks.{i}.mlp.fc.weight", [p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"]),
           (f"blocks.{i}.mlp.proj.weight", [p + "mlp.down_proj.weight"])]
    bc = cfg.block_config()
    if bc.qkv_bias:
        out.append((f"blocks.{i}.attn.qkv.bias", [p + f"self_attn.{x}_proj.bias" for x in "qkv"]))
    if bc.attn_out_bias:
        out.append((f"blocks.{i}.attn.proj.bias", [p + "self_attn.o_proj.bias"]))
    if bc.mlp_bias:
        out += [(f"blocks.{i}.mlp.fc.bias", [p + "mlp.gate_proj.bias", p + "mlp.up_proj.bias"]),
                (f"blocks.{i}.mlp.proj.bias", [p + "mlp.down_proj.bias"])]
    if cfg.qk_norm:
        out += [(f"blocks.{i}.attn.q_norm.weight", [p + "self_attn.q_norm.weight"]),
                (f"blocks.{i}.attn.k_norm.weight", [p + "self_attn.k_norm.weight"])]
    return out


def weight_map(cfg: GPTConfig) -> list[tuple[str, list[str]]]:
    out = [("wte.weight", ["model.embed_tokens.weight"]), ("ln_f.weight", ["model.norm.weight"])]
    for i in range(cfg.n_layer):
        out += _block_map(i, cfg)
    if not cfg.tie_embeddings:
        out.append(("lm_head.weight", ["lm_head.weight"]))
    return out


def build_empty(cfg: GPTConfig) -> GPT:
    """A GPT with allocated but uninitialised parameters (no time spent on random init); buffers computed."""
    with torch.device("meta"):
        model = GPT(cfg)
    model.to_empty(device="cpu")
    model.reset_buffers()
    return model


@register_loader("llama", "mistral", "qwen2", "qwen3")
def load_llama(hf: dict, weights, path: Path) -> GPT:
    cfg = config_from_hf(hf, path)
    model = build_empty(cfg)
    own = dict(model.named_parameters())
    for ours, theirs in weight_map(cfg):
        dest, row = own[ours], 0
        for k in theirs:  # fused parts land in consecutive rows of the fused weight, read in place
            if k not in weights:
                raise CheckpointError(f"{path}: weight {k!r} is missing")
            rows = weights.shape(k)[0] if weights.shape(k) else 0
            if row + rows > dest.shape[0] or weights.shape(k)[1:] != tuple(dest.shape[1:]):
                raise CheckpointError(f"{path}: {' + '.join(theirs)} do not fit {ours} of shape "
                                      f"{tuple(dest.shape)} (from config.json); {k!r} is {weights.shape(k)}")
            weights.read_into(k, dest[row:row + rows])
            row += rows
        if row != dest.shape[0]:
            raise CheckpointError(f"{path}: {' + '.join(theirs)} fill {row} of {dest.shape[0]} rows of {ours}")
    if cfg.tie_embeddings:
        weights.pop("lm_head.weight", None)  # some tied checkpoints store the copy anyway
    leftover = [k for k in weights if not k.endswith("rotary_emb.inv_freq")]
    if leftover:
        raise CheckpointError(f"{path}: unexpected weight(s) {leftover[:5]}")
    return model


def hf_model_type(cfg: GPTConfig) -> str | None:
    """The HF family a GPT config exports to, or None when it has no Llama-family twin."""
    bc = cfg.block_config()
    if not (cfg.position == "rotary" and cfg.norm == "rmsnorm" and cfg.activation in ("swiglu", "geglu")
            and not cfg.cross_attention and not bc.bias and not cfg.token_shift):
        return None
    qkv_bias, out_bias, mlp_bias = bool(bc.qkv_bias), bool(bc.attn_out_bias), bool(bc.mlp_bias)
    if cfg.qk_norm:
        return "qwen3" if qkv_bias == out_bias and not mlp_bias else None
    if qkv_bias and not out_bias and not mlp_bias:
        return "qwen2"
    if cfg.sliding_window is not None:
        return "mistral" if not (qkv_bias or out_bias or mlp_bias) and cfg.layer_types is None else None
    return "llama" if qkv_bias == out_bias else None


def hf_config(cfg: GPTConfig, kind: str) -> dict:
    hf = {"model_type": kind, "architectures": [MODEL_TYPES[kind]], "vocab_size": cfg.vocab_size,
          "hidden_size": cfg.n_embd, "intermediate_size": cfg.block_config().mlp_hidden,
          "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
          "num_key_value_heads": cfg.n_kv_head or cfg.n_head, "head_dim": cfg.head_size,
          "hidden_act": "silu" if cfg.activation == "swiglu" else "gelu",
          "max_position_embeddings": cfg.block_size, "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta,
          "rope_scaling": cfg.rope_scaling, "tie_word_embeddings": cfg.tie_embeddings, "attention_dropout": 0.0,
          "dtype": "float32"}
    if kind == "llama":
        hf.update(attention_bias=bool(cfg.block_config().qkv_bias), mlp_bias=bool(cfg.block_config().mlp_bias))
    elif kind == "mistral":
        hf["sliding_window"] = cfg.sliding_window
    else:
        if kind == "qwen3":
            hf["attention_bias"] = bool(cfg.block_config().qkv_bias)
        windowed = cfg.sliding_window is not None
        layer_types = cfg.layer_types or ["sliding_attention" if windowed else "full_attention"] * cfg.n_layer
        hf.update(use_sliding_window=windowed, sliding_window=cfg.sliding_window, layer_types=layer_types,
                  max_window_layers=next((i for i, t in enumerate(layer_types) if t == "sliding_attention"),
                                         cfg.n_layer))
    return hf


@register_exporter("gpt")
def save_llama(model: GPT, folder: Path) -> bool:
    cfg = model.config
    kind = hf_model_type(cfg)
    if kind is None:
        return False
    own = model.state_dict()
    state = {}
    for ours, theirs in weight_map(cfg):
        t = own[ours]
        if len(theirs) == 1:
            state[theirs[0]] = t
            continue
        if ours.endswith("attn.qkv.weight") or ours.endswith("attn.qkv.bias"):
            D, H, KV = cfg.head_size, cfg.n_head, cfg.n_kv_head or cfg.n_head
            sizes = [H * D, KV * D, KV * D]
        else:
            sizes = [t.shape[0] // 2] * 2
        for name, part in zip(theirs, t.split(sizes, dim=0)):
            state[name] = part
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(hf_config(cfg, kind), indent=2))
    return True
