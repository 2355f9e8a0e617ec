"""VisionEncoderDecoderModel (`model_type: vision-encoder-decoder`, a ViT encoder + a GPT-2 decoder with
cross-attention) <-> lingvis Captioner. The encoder and decoder maps are the ViT and GPT-2 converters';
this module adds GPT-2's cross-attention (`crossattention.q_attn` / `c_attn` = k,v / `c_proj`,
`ln_cross_attn`) and the `enc_to_dec_proj` projection."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..io import CheckpointError, load_state
from ..models.captioner import Captioner, CaptionerConfig
from . import gpt2
from .registry import register_exporter, register_loader
from .vision_common import write_preprocessor
from .vit import hf_vit_style, vit_config_from_hf, vit_hf_config, vit_state_from_hf, vit_state_to_hf

# lingvis cross-attention part <-> GPT-2 name; every weight here is a Conv1D (stored transposed)
CROSS_MAP = {"cross_attn.q": "crossattention.q_attn", "cross_attn.kv": "crossattention.c_attn",
             "cross_attn.proj": "crossattention.c_proj"}


def _check_types(hf: dict, path: Path) -> tuple[dict, dict]:
    enc, dec = hf.get("encoder") or {}, hf.get("decoder") or {}
    if enc.get("model_type") != "vit":
        raise CheckpointError(f"{path / 'config.json'}: encoder model_type {enc.get('model_type')!r} is not "
                              "supported; lingvis loads a 'vit' encoder")
    if dec.get("model_type") != "gpt2":
        raise CheckpointError(f"{path / 'config.json'}: decoder model_type {dec.get('model_type')!r} is not "
                              "supported; lingvis loads a 'gpt2' decoder")
    if not dec.get("add_cross_attention"):
        raise CheckpointError(f"{path / 'config.json'}: the gpt2 decoder has no cross-attention "
                              "(add_cross_attention=false)")
    return enc, dec


def _cross_from_hf(s: dict, n_layer: int) -> dict[str, torch.Tensor]:
    out = {}
    for i in range(n_layer):
        hp, op = f"h.{i}.", f"decoder.blocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{op}ln_cross.{kind}"] = s.pop(f"{hp}ln_cross_attn.{kind}")
            for ours, theirs in CROSS_MAP.items():
                t = s.pop(f"{hp}{theirs}.{kind}")
                out[f"{op}{ours}.{kind}"] = t.t().contiguous() if kind == "weight" else t
    return out


def _split(hf_state: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    enc, dec, rest = {}, {}, {}
    for k, v in hf_state.items():
        if k.startswith("encoder."):
            enc[k[len("encoder."):]] = v
        elif k.startswith("decoder."):
            dec[k[len("decoder."):]] = v
        else:
            rest[k] = v
    dec = {(k[len("transformer."):] if k.startswith("transformer.") else k): v for k, v in dec.items()}
    return enc, dec, rest


def config_from_hf(hf: dict, path: Path, pooler: bool, project: bool) -> CaptionerConfig:
    enc, dec = _check_types(hf, path)
    vcfg = vit_config_from_hf(enc, path, pooler)
    dcfg = gpt2.config_from_hf(dec)
    eos = hf.get("eos_token_id", dec.get("eos_token_id"))
    start = hf.get("decoder_start_token_id", dec.get("bos_token_id"))
    pad = hf.get("pad_token_id", dec.get("pad_token_id"))
    return CaptionerConfig("vit", dataclasses.asdict(vcfg), dataclasses.asdict(dcfg), project=project,
                           bos_id=start if start is not None else 0, eos_id=eos if eos is not None else 0,
                           pad_id=pad if pad is not None else (eos or 0))


@register_loader("vision-encoder-decoder")
def load_vision_encoder_decoder(hf: dict, hf_state: dict[str, torch.Tensor], path: Path) -> Captioner:
    enc_s, dec_s, rest = _split(hf_state)
    cfg = config_from_hf(hf, path, pooler="pooler.dense.weight" in enc_s, project="enc_to_dec_proj.weight" in rest)
    model = Captioner(cfg)
    dcfg = model.decoder.config
    try:
        state = {f"encoder.{k}": v for k, v in vit_state_from_hf(enc_s, model.encoder.config, path).items()}
        state.update(_cross_from_hf(dec_s, dcfg.n_layer))
        state.update({f"decoder.{k}": v for k, v in gpt2.state_from_hf(dec_s, dcfg.n_layer).items()})
        if model.proj is not None:
            state["proj.weight"] = rest.pop("enc_to_dec_proj.weight")
            state["proj.bias"] = rest.pop("enc_to_dec_proj.bias")
    except KeyError as e:
        raise CheckpointError(f"{path}: VisionEncoderDecoder weight {e.args[0]!r} is missing") from e
    if dcfg.tie_embeddings:
        state.pop("decoder.lm_head.weight", None)
    if enc_s or rest:
        raise CheckpointError(f"{path}: unexpected VisionEncoderDecoder weight(s): {sorted([*enc_s, *rest])[:5]}")
    load_state(model, state, source=str(path))
    return model


def exportable(model: Captioner) -> bool:
    c, vcfg, dcfg = model.config, model.encoder.config, model.decoder.config
    if c.vision_family != "vit" or not hf_vit_style(vcfg):
        return False
    widths_differ = vcfg.dim != dcfg.n_embd  # HF adds enc_to_dec_proj exactly then
    return (model.proj is not None) == widths_differ and gpt2.exportable(dataclasses.replace(dcfg,
                                                                                          cross_attention=False))


def _decoder_to_hf(own: dict, dcfg) -> dict[str, torch.Tensor]:
    out = {"transformer.wte.weight": own["decoder.wte.weight"], "transformer.wpe.weight": own["decoder.wpe.weight"],
           "transformer.ln_f.weight": own["decoder.ln_f.weight"], "transformer.ln_f.bias": own["decoder.ln_f.bias"]}
    if not dcfg.tie_embeddings:
        out["lm_head.weight"] = own["decoder.lm_head.weight"]
    for i in range(dcfg.n_layer):
        op, hp = f"decoder.blocks.{i}.", f"transformer.h.{i}."
        for kind in ("weight", "bias"):
            for ours, theirs in gpt2.BLOCK_MAP.items():
                t = own[f"{op}{ours}.{kind}"]
                out[f"{hp}{theirs}.{kind}"] = t.t() if f"{theirs}.{kind}" in gpt2.CONV1D else t
            out[f"{hp}ln_cross_attn.{kind}"] = own[f"{op}ln_cross.{kind}"]
            for ours, theirs in CROSS_MAP.items():
                t = own[f"{op}{ours}.{kind}"]
                out[f"{hp}{theirs}.{kind}"] = t.t() if kind == "weight" else t
    return out


def hf_config(model: Captioner) -> dict:
    c, vcfg, d = model.config, model.encoder.config, model.decoder.config
    dec = {"model_type": "gpt2", "vocab_size": d.vocab_size, "n_positions": d.block_size, "n_embd": d.n_embd,
           "n_layer": d.n_layer, "n_head": d.n_head, "n_inner": int(d.mlp_ratio * d.n_embd),
           "activation_function": gpt2.ACT_TO_HF[d.activation], "layer_norm_epsilon": d.norm_eps,
           "resid_pdrop": d.dropout, "embd_pdrop": d.dropout, "attn_pdrop": d.dropout,
           "tie_word_embeddings": d.tie_embeddings, "add_cross_attention": True, "is_decoder": True,
           "bos_token_id": c.bos_id, "eos_token_id": c.eos_id, "pad_token_id": c.pad_id}
    return {"model_type": "vision-encoder-decoder", "architectures": ["VisionEncoderDecoderModel"],
            "encoder": vit_hf_config(vcfg), "decoder": dec, "is_encoder_decoder": True, "tie_word_embeddings": False,
            "decoder_start_token_id": c.bos_id, "eos_token_id": c.eos_id, "pad_token_id": c.pad_id}


@register_exporter("captioner")
def save_vision_encoder_decoder(model: Captioner, folder: Path) -> bool:
    if not exportable(model):
        return False
    own = model.state_dict()
    vcfg = model.encoder.config
    enc = vit_state_to_hf({k[len("encoder."):]: v for k, v in own.items() if k.startswith("encoder.")}, vcfg)
    state = {f"encoder.{k}": v for k, v in enc.items()}
    state.update({f"decoder.{k}": v for k, v in _decoder_to_hf(own, model.decoder.config).items()})
    if model.proj is not None:
        state["enc_to_dec_proj.weight"], state["enc_to_dec_proj.bias"] = own["proj.weight"], own["proj.bias"]
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(hf_config(model), indent=2))
    write_preprocessor(folder, vcfg, "ViTImageProcessor")
    return True
