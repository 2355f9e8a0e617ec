"""MarianMTModel (`model_type: marian`) <-> lingvis Seq2Seq. HF keeps separate q/k/v projections: we fuse
them (self-attention `qkv`, cross-attention `q` + `kv`). Sinusoidal positions are static on both sides."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..io import CheckpointError, load_state
from ..models.seq2seq import Seq2Seq, Seq2SeqConfig
from .registry import register_exporter, register_loader

ACT_FROM_HF = {"gelu": "gelu", "relu": "relu", "swish": "silu", "silu": "silu", "gelu_new": "gelu_tanh",
               "gelu_pytorch_tanh": "gelu_tanh", "quick_gelu": "quick_gelu"}
ACT_TO_HF = {"gelu": "gelu", "relu": "relu", "silu": "swish", "gelu_tanh": "gelu_new", "quick_gelu": "quick_gelu"}
# lingvis block name <-> HF layer name (weights and biases); fused projections are handled apart
COMMON = {"attn.proj": "self_attn.out_proj", "ln_1": "self_attn_layer_norm", "mlp.fc": "fc1", "mlp.proj": "fc2",
          "ln_2": "final_layer_norm"}
CROSS = {"cross_attn.q": "encoder_attn.q_proj", "cross_attn.proj": "encoder_attn.out_proj",
         "ln_cross": "encoder_attn_layer_norm"}
HF_NORM_EPS = 1e-5  # Marian's LayerNorms use torch's default epsilon


def _same(hf: dict, a: str, b: str) -> int:
    if hf.get(a, hf.get(b)) != hf.get(b, hf.get(a)):
        raise CheckpointError(f"Marian config: {a}={hf.get(a)} != {b}={hf.get(b)} is not supported "
                              "(lingvis uses one value for encoder and decoder)")
    return hf[a] if a in hf else hf[b]


def config_from_hf(hf: dict) -> Seq2SeqConfig:
    act = hf.get("activation_function", "gelu")
    if act not in ACT_FROM_HF:
        raise CheckpointError(f"Marian activation_function {act!r} is not supported; known: {sorted(ACT_FROM_HF)}")
    if hf.get("normalize_before") or hf.get("add_final_layer_norm") or hf.get("normalize_embedding"):
        raise CheckpointError("Marian pre-norm / layernorm_embedding variants (mBART style) are not supported")
    shared = hf.get("share_encoder_decoder_embeddings", True)
    dec_vocab = hf.get("decoder_vocab_size") or hf["vocab_size"]
    bad = [w[0] for w in hf.get("bad_words_ids") or [] if isinstance(w, list) and len(w) == 1]
    pad = hf.get("pad_token_id", 0)
    return Seq2SeqConfig(
        vocab_size=hf["vocab_size"], tgt_vocab_size=None if shared or dec_vocab == hf["vocab_size"] else dec_vocab,
        encoder_layers=hf["encoder_layers"], decoder_layers=hf["decoder_layers"], dim=hf["d_model"],
        n_head=_same(hf, "encoder_attention_heads", "decoder_attention_heads"),
        ffn_dim=_same(hf, "encoder_ffn_dim", "decoder_ffn_dim"), activation=ACT_FROM_HF[act], norm_eps=HF_NORM_EPS,
        prenorm=False, final_norm=False, position="sinusoidal", sinusoidal_interleave=False,
        max_len=hf.get("max_position_embeddings", 1024), scale_embedding=bool(hf.get("scale_embedding", False)),
        share_embeddings=shared, tie_embeddings=hf.get("tie_word_embeddings", True), final_logits_bias=True,
        dropout=float(hf.get("dropout", 0.0)), pad_id=pad, eos_id=hf.get("eos_token_id", 0),
        decoder_start_id=hf.get("decoder_start_token_id", pad), forced_eos_id=hf.get("forced_eos_token_id"),
        suppress_ids=bad)


def _layer_from_hf(s: dict, hf_prefix: str, ours: str, cross: bool) -> dict[str, torch.Tensor]:
    out = {}
    names = {**COMMON, **(CROSS if cross else {})}
    for kind in ("weight", "bias"):
        for mine, theirs in names.items():
            out[f"{ours}.{mine}.{kind}"] = s.pop(f"{hf_prefix}.{theirs}.{kind}")
        qkv = [s.pop(f"{hf_prefix}.self_attn.{p}_proj.{kind}") for p in "qkv"]
        out[f"{ours}.attn.qkv.{kind}"] = torch.cat(qkv, dim=0)
        if cross:
            kv = [s.pop(f"{hf_prefix}.encoder_attn.{p}_proj.{kind}") for p in "kv"]
            out[f"{ours}.cross_attn.kv.{kind}"] = torch.cat(kv, dim=0)
    return out


def state_from_hf(hf_state: dict[str, torch.Tensor], cfg: Seq2SeqConfig) -> dict[str, torch.Tensor]:
    s = {(k[len("model."):] if k.startswith("model.") else k): v for k, v in hf_state.items()}
    for k in ("encoder.embed_positions.weight", "decoder.embed_positions.weight"):
        s.pop(k, None)  # static sinusoids, recomputed
    out: dict[str, torch.Tensor] = {}
    if cfg.share_embeddings:
        table = s.pop("shared.weight", None)
        table = table if table is not None else s["encoder.embed_tokens.weight"]
        out["embed.weight"] = table
        s.pop("encoder.embed_tokens.weight", None)
        s.pop("decoder.embed_tokens.weight", None)
    else:
        out["embed.weight"] = s.pop("encoder.embed_tokens.weight")
        out["tgt_embed.weight"] = s.pop("decoder.embed_tokens.weight")
        s.pop("shared.weight", None)
    head = s.pop("lm_head.weight", None)
    if not cfg.tie_embeddings:
        if head is None:
            raise KeyError("lm_head.weight")
        out["lm_head.weight"] = head
    bias = s.pop("final_logits_bias", None)
    out["final_logits_bias"] = bias.reshape(-1) if bias is not None else torch.zeros(cfg.target_vocab)
    for i in range(cfg.encoder_layers):
        out.update(_layer_from_hf(s, f"encoder.layers.{i}", f"encoder.{i}", cross=False))
    for i in range(cfg.decoder_layers):
        out.update(_layer_from_hf(s, f"decoder.layers.{i}", f"decoder.{i}", cross=True))
    if s:
        raise CheckpointError(f"unexpected Marian weight(s): {sorted(s)[:5]}")
    return out


@register_loader("marian")
def load_marian(hf_config: dict, hf_state: dict[str, torch.Tensor], path: Path) -> Seq2Seq:
    cfg = config_from_hf(hf_config)
    model = Seq2Seq(cfg)
    try:
        state = state_from_hf(hf_state, cfg)
    except KeyError as e:
        raise CheckpointError(f"{path}: Marian weight {e.args[0]!r} is missing") from e
    load_state(model, state, source=str(path))
    return model


def exportable(cfg: Seq2SeqConfig) -> bool:
    return (not cfg.prenorm and not cfg.final_norm and cfg.position == "sinusoidal" and not cfg.sinusoidal_interleave
            and cfg.norm == "layernorm" and cfg.norm_eps == HF_NORM_EPS and cfg.bias and cfg.activation in ACT_TO_HF)


def _layer_to_hf(own: dict, ours: str, hf_prefix: str, cross: bool, dim: int) -> dict[str, torch.Tensor]:
    out = {}
    names = {**COMMON, **(CROSS if cross else {})}
    for kind in ("weight", "bias"):
        for mine, theirs in names.items():
            out[f"{hf_prefix}.{theirs}.{kind}"] = own[f"{ours}.{mine}.{kind}"]
        for p, t in zip("qkv", own[f"{ours}.attn.qkv.{kind}"].split(dim, dim=0)):
            out[f"{hf_prefix}.self_attn.{p}_proj.{kind}"] = t
        if cross:
            for p, t in zip("kv", own[f"{ours}.cross_attn.kv.{kind}"].split(dim, dim=0)):
                out[f"{hf_prefix}.encoder_attn.{p}_proj.{kind}"] = t
    return out


def hf_config(cfg: Seq2SeqConfig) -> dict:
    return {"model_type": "marian", "architectures": ["MarianMTModel"], "vocab_size": cfg.vocab_size,
            "decoder_vocab_size": cfg.target_vocab, "d_model": cfg.dim, "encoder_layers": cfg.encoder_layers,
            "decoder_layers": cfg.decoder_layers, "encoder_attention_heads": cfg.n_head,
            "decoder_attention_heads": cfg.n_head, "encoder_ffn_dim": cfg.ffn_dim, "decoder_ffn_dim": cfg.ffn_dim,
            "activation_function": ACT_TO_HF[cfg.activation], "max_position_embeddings": cfg.max_len,
            "scale_embedding": cfg.scale_embedding, "share_encoder_decoder_embeddings": cfg.share_embeddings,
            "tie_word_embeddings": cfg.tie_embeddings, "dropout": cfg.dropout, "attention_dropout": cfg.dropout,
            "activation_dropout": 0.0, "pad_token_id": cfg.pad_id, "eos_token_id": cfg.eos_id,
            "decoder_start_token_id": cfg.decoder_start_id, "forced_eos_token_id": cfg.forced_eos_id,
            "bad_words_ids": [[i] for i in cfg.suppress_ids] or None, "is_encoder_decoder": True}


@register_exporter("seq2seq")
def save_marian(model: Seq2Seq, folder: Path) -> bool:
    cfg = model.config
    if not exportable(cfg):
        return False
    own = model.state_dict()
    state = {}
    if cfg.share_embeddings:
        state["model.shared.weight"] = own["embed.weight"]
    else:
        state["model.encoder.embed_tokens.weight"] = own["embed.weight"]
        state["model.decoder.embed_tokens.weight"] = own["tgt_embed.weight"]
    if not cfg.tie_embeddings:
        state["lm_head.weight"] = own["lm_head.weight"]
    bias = own.get("final_logits_bias")
    state["final_logits_bias"] = (bias if bias is not None else torch.zeros(cfg.target_vocab))[None]
    for i in range(cfg.encoder_layers):
        state.update(_layer_to_hf(own, f"encoder.{i}", f"model.encoder.layers.{i}", False, cfg.dim))
    for i in range(cfg.decoder_layers):
        state.update(_layer_to_hf(own, f"decoder.{i}", f"model.decoder.layers.{i}", True, cfg.dim))
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(hf_config(cfg), indent=2))
    return True
