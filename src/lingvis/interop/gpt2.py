"""GPT-2 (`model_type: gpt2`) <-> lingvis GPT. HF stores Conv1D weights as (in, out): we transpose."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..io import CheckpointError, load_state
from ..models.gpt import GPT, GPTConfig
from .registry import register_exporter, register_loader
from .adapters import AdapterLayout, register_layout

ACT_FROM_HF = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu",
               "quick_gelu": "quick_gelu", "silu": "silu", "swish": "silu"}
ACT_TO_HF = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "quick_gelu": "quick_gelu", "silu": "silu"}
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# lingvis block name  <->  HF block name
BLOCK_MAP = {"ln_1": "ln_1", "attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj", "ln_2": "ln_2",
             "mlp.fc": "mlp.c_fc", "mlp.proj": "mlp.c_proj"}


def config_from_hf(hf: dict) -> GPTConfig:
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if hf.get(flag):
            raise CheckpointError(f"GPT-2 config option {flag}=true is not supported")
    act = hf.get("activation_function", "gelu_new")
    if act not in ACT_FROM_HF:
        raise CheckpointError(f"GPT-2 activation_function {act!r} is not supported; known: {sorted(ACT_FROM_HF)}")
    n_embd = hf["n_embd"]
    return GPTConfig(vocab_size=hf["vocab_size"], block_size=hf.get("n_positions", 1024), n_layer=hf["n_layer"],
                     n_head=hf["n_head"], n_embd=n_embd, mlp_ratio=(hf.get("n_inner") or 4 * n_embd) / n_embd,
                     activation=ACT_FROM_HF[act], norm_eps=hf.get("layer_norm_epsilon", 1e-5),
                     tie_embeddings=hf.get("tie_word_embeddings", True))


def state_from_hf(hf_state: dict[str, torch.Tensor], n_layer: int) -> dict[str, torch.Tensor]:
    s = {(k[len("transformer."):] if k.startswith("transformer.") else k): v for k, v in hf_state.items()}
    out = {"wte.weight": s.pop("wte.weight"), "wpe.weight": s.pop("wpe.weight"),
           "ln_f.weight": s.pop("ln_f.weight"), "ln_f.bias": s.pop("ln_f.bias")}
    if "lm_head.weight" in s:
        out["lm_head.weight"] = s.pop("lm_head.weight")
    for i in range(n_layer):
        for ours, theirs in BLOCK_MAP.items():
            for kind in ("weight", "bias"):
                t = s.pop(f"h.{i}.{theirs}.{kind}")
                out[f"blocks.{i}.{ours}.{kind}"] = t.t().contiguous() if f"{theirs}.{kind}" in CONV1D else t
    leftover = [k for k in s if not (k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"))]
    if leftover:
        raise CheckpointError(f"unexpected GPT-2 weight(s): {leftover[:5]}")
    return out


@register_loader("gpt2")
def load_gpt2(hf_config: dict, hf_state: dict[str, torch.Tensor], path: Path) -> GPT:
    cfg = config_from_hf(hf_config)
    model = GPT(cfg)
    try:
        state = state_from_hf(hf_state, cfg.n_layer)
    except KeyError as e:
        raise CheckpointError(f"{path}: GPT-2 weight {e.args[0]!r} is missing") from e
    if cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    load_state(model, state, source=str(path))
    return model


GPT2_EOT = 50256  # <|endoftext|> in the GPT-2 byte-level BPE vocabulary


def exportable(cfg: GPTConfig) -> bool:
    bc = cfg.block_config()
    return (cfg.position == "learned" and cfg.norm == "layernorm" and cfg.bias and cfg.activation in ACT_TO_HF
            and not cfg.cross_attention and cfg.n_kv_head in (None, cfg.n_head) and not cfg.token_shift
            and cfg.head_size * cfg.n_head == cfg.n_embd and not cfg.qk_norm and cfg.sliding_window is None
            and all(b in (None, True) for b in (bc.qkv_bias, bc.attn_out_bias, bc.mlp_bias))
            and float(bc.mlp_hidden).is_integer())


@register_exporter("gpt")
def save_gpt2(model: GPT, folder: Path) -> bool:
    cfg = model.config
    if not exportable(cfg):
        return False
    inv = {v: k for k, v in BLOCK_MAP.items()}
    own = model.state_dict()
    state = {"transformer.wte.weight": own["wte.weight"], "transformer.wpe.weight": own["wpe.weight"],
             "transformer.ln_f.weight": own["ln_f.weight"], "transformer.ln_f.bias": own["ln_f.bias"]}
    if not cfg.tie_embeddings:
        state["lm_head.weight"] = own["lm_head.weight"]
    for i in range(cfg.n_layer):
        for theirs, ours in inv.items():
            for kind in ("weight", "bias"):
                t = own[f"blocks.{i}.{ours}.{kind}"]
                state[f"transformer.h.{i}.{theirs}.{kind}"] = t.t() if f"{theirs}.{kind}" in CONV1D else t
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    hf = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": cfg.vocab_size,
          "n_positions": cfg.block_size, "n_ctx": cfg.block_size, "n_embd": cfg.n_embd, "n_layer": cfg.n_layer,
          "n_head": cfg.n_head, "n_inner": cfg.block_config().mlp_hidden,
          "activation_function": ACT_TO_HF[cfg.activation], "layer_norm_epsilon": cfg.norm_eps,
          "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
          "tie_word_embeddings": cfg.tie_embeddings}
    # GPT-2's <|endoftext|> (50256) when the vocabulary has it; otherwise no default that would point past
    # the vocabulary (`lingvis.save(..., tokenizer=)` stamps the tokenizer's own ids over these)
    eot = GPT2_EOT if cfg.vocab_size > GPT2_EOT else None
    hf.update(bos_token_id=eot, eos_token_id=eot)
    (folder / "config.json").write_text(json.dumps(hf, indent=2))
    return True


@register_layout("gpt")
def adapter_layout(cfg: GPTConfig) -> AdapterLayout | None:
    """PEFT names of the LoRA projections (HF Conv1D: fan_in_fan_out) and of the norms PEFT may save whole."""
    if not exportable(cfg):
        return None
    modules, saved = {}, {"ln_f": "transformer.ln_f"}
    for i in range(cfg.n_layer):
        for ours, theirs in BLOCK_MAP.items():
            name, hf = f"blocks.{i}.{ours}", f"transformer.h.{i}.{theirs}"
            if ours.startswith("ln_"):
                saved[name] = hf
            else:
                modules[name] = (hf,)
    return AdapterLayout(modules, saved, task_type="CAUSAL_LM", fan_in_fan_out=True)
