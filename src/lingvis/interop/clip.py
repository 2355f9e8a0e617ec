"""HF `CLIPModel` (model_type clip) <-> lingvis CLIP (ViT image tower + CLIP text tower)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from ..io import CheckpointError, load_state
from ..models.clip import CLIP, CLIPConfig
from ..models.clip_text import CLIPTextConfig
from ..models.vit import ViT, ViTConfig
from .registry import register_exporter, register_loader
from .vision_common import (ACT_TO_HF, CLIP_BLOCK, activation_from_hf, blocks_from_hf, blocks_to_hf, check_leftover,
                            clip_vision_style, read_preprocessor, save_weights, write_preprocessor)

LEGACY_EOS = 2  # transformers: eos_token_id == 2 means "pool at the highest token id" (pre-#24773 configs)


def vision_config_from_hf(v: dict, path: Path) -> ViTConfig:
    return ViTConfig(image_size=v.get("image_size", 224), patch_size=v.get("patch_size", 32),
                     channels=v.get("num_channels", 3), dim=v.get("hidden_size", 768),
                     depth=v.get("num_hidden_layers", 12), heads=v.get("num_attention_heads", 12),
                     mlp_hidden=v.get("intermediate_size", 3072),
                     activation=activation_from_hf(v.get("hidden_act", "quick_gelu"), str(path / "config.json")),
                     norm_eps=v.get("layer_norm_eps", 1e-5), pre_norm=True, patch_bias=False, final_norm="pooled",
                     **read_preprocessor(path))


def text_config_from_hf(t: dict, path: Path) -> CLIPTextConfig:
    return CLIPTextConfig(vocab_size=t.get("vocab_size", 49408), context_length=t.get("max_position_embeddings", 77),
                          dim=t.get("hidden_size", 512), depth=t.get("num_hidden_layers", 12),
                          heads=t.get("num_attention_heads", 8), mlp_hidden=t.get("intermediate_size", 2048),
                          activation=activation_from_hf(t.get("hidden_act", "quick_gelu"), str(path / "config.json")),
                          norm_eps=t.get("layer_norm_eps", 1e-5))


def vision_state_from_hf(s: dict, cfg: ViTConfig) -> dict:
    out = {"cls_token": s.pop("embeddings.class_embedding"),
           "patch_embed.weight": s.pop("embeddings.patch_embedding.weight"),
           "pos_embed": s.pop("embeddings.position_embedding.weight"),
           "ln_pre.weight": s.pop("pre_layrnorm.weight"), "ln_pre.bias": s.pop("pre_layrnorm.bias"),
           "ln_post.weight": s.pop("post_layernorm.weight"), "ln_post.bias": s.pop("post_layernorm.bias")}
    out.update(blocks_from_hf(s, cfg.depth, "encoder.layers.", "blocks.", CLIP_BLOCK, cfg.dim))
    return out


def vision_state_to_hf(own: dict, cfg: ViTConfig) -> dict:
    out = {"embeddings.class_embedding": own["cls_token"], "embeddings.patch_embedding.weight": own["patch_embed.weight"],
           "embeddings.position_embedding.weight": own["pos_embed"],
           "pre_layrnorm.weight": own["ln_pre.weight"], "pre_layrnorm.bias": own["ln_pre.bias"],
           "post_layernorm.weight": own["ln_post.weight"], "post_layernorm.bias": own["ln_post.bias"]}
    out.update(blocks_to_hf(own, cfg.depth, "encoder.layers.", "blocks.", CLIP_BLOCK))
    return out


def text_state_from_hf(s: dict, cfg: CLIPTextConfig) -> dict:
    out = {"tok_emb.weight": s.pop("embeddings.token_embedding.weight"),
           "pos_emb": s.pop("embeddings.position_embedding.weight"),
           "ln_final.weight": s.pop("final_layer_norm.weight"), "ln_final.bias": s.pop("final_layer_norm.bias")}
    out.update(blocks_from_hf(s, cfg.depth, "encoder.layers.", "blocks.", CLIP_BLOCK, cfg.dim))
    return out


def text_state_to_hf(own: dict, cfg: CLIPTextConfig) -> dict:
    out = {"embeddings.token_embedding.weight": own["tok_emb.weight"],
           "embeddings.position_embedding.weight": own["pos_emb"],
           "final_layer_norm.weight": own["ln_final.weight"], "final_layer_norm.bias": own["ln_final.bias"]}
    out.update(blocks_to_hf(own, cfg.depth, "encoder.layers.", "blocks.", CLIP_BLOCK))
    return out


def _sub(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@register_loader("clip")
def load_clip(hf: dict, hf_state: dict[str, torch.Tensor], path: Path) -> CLIP:
    t = hf.get("text_config") or hf.get("text_config_dict") or {}
    v = hf.get("vision_config") or hf.get("vision_config_dict") or {}
    vcfg, tcfg = vision_config_from_hf(v, path), text_config_from_hf(t, path)
    eos = t.get("eos_token_id", 49407)
    cfg = CLIPConfig(vision_family="vit", vision=dataclasses.asdict(vcfg), text_family="clip_text",
                     text=dataclasses.asdict(tcfg), projection_dim=hf.get("projection_dim", 512),
                     text_pool="argmax" if eos == LEGACY_EOS else "eos", eos_token_id=eos,
                     bos_token_id=t.get("bos_token_id"), pad_token_id=t.get("pad_token_id"),
                     logit_scale_init=hf.get("logit_scale_init_value", 2.6592))
    vs, ts = _sub(hf_state, "vision_model."), _sub(hf_state, "text_model.")
    try:
        state = {f"vision.{k}": x for k, x in vision_state_from_hf(vs, vcfg).items()}
        state.update({f"text.{k}": x for k, x in text_state_from_hf(ts, tcfg).items()})
        for k in ("visual_projection.weight", "text_projection.weight", "logit_scale"):
            state[k] = hf_state[k]
    except KeyError as e:
        raise CheckpointError(f"{path}: CLIP weight {e.args[0]!r} is missing") from e
    check_leftover(vs, path, "CLIP vision")
    check_leftover(ts, path, "CLIP text", ignore=("position_ids",))
    model = CLIP(cfg)
    load_state(model, state, source=str(path))
    return model


def vision_hf_config(c: ViTConfig) -> dict:
    return {"model_type": "clip_vision_model", "hidden_size": c.dim, "num_hidden_layers": c.depth,
            "num_attention_heads": c.heads, "intermediate_size": c.mlp_hidden, "hidden_act": ACT_TO_HF[c.activation],
            "layer_norm_eps": c.norm_eps, "image_size": c.image_size, "patch_size": c.patch_size,
            "num_channels": c.channels, "attention_dropout": c.dropout}


def exportable(model: CLIP) -> bool:
    c = model.config
    if c.vision_family != "vit" or c.text_family != "clip_text" or not clip_vision_style(model.vision.config):
        return False
    if model.text.config.activation not in ACT_TO_HF or c.text_pool not in ("eos", "argmax"):
        return False
    return c.text_pool == "argmax" or (c.eos_token_id is not None and c.eos_token_id != LEGACY_EOS)


@register_exporter("clip")
def save_clip(model: CLIP, folder: Path) -> bool:
    if not exportable(model):
        return False
    c, vc, tc = model.config, model.vision.config, model.text.config
    own = model.state_dict()
    state = {f"vision_model.{k}": x for k, x in vision_state_to_hf(_sub(own, "vision."), vc).items()}
    state.update({f"text_model.{k}": x for k, x in text_state_to_hf(_sub(own, "text."), tc).items()})
    for k in ("visual_projection.weight", "text_projection.weight", "logit_scale"):
        state[k] = own[k]
    save_weights(state, folder)
    text = {"model_type": "clip_text_model", "vocab_size": tc.vocab_size, "max_position_embeddings": tc.context_length,
            "hidden_size": tc.dim, "num_hidden_layers": tc.depth, "num_attention_heads": tc.heads,
            "intermediate_size": tc.mlp_hidden, "hidden_act": ACT_TO_HF[tc.activation], "layer_norm_eps": tc.norm_eps,
            "attention_dropout": tc.dropout, "projection_dim": c.projection_dim,
            "eos_token_id": LEGACY_EOS if c.text_pool == "argmax" else c.eos_token_id,
            "bos_token_id": c.bos_token_id, "pad_token_id": c.pad_token_id}
    hf = {"model_type": "clip", "architectures": ["CLIPModel"], "projection_dim": c.projection_dim,
          "logit_scale_init_value": c.logit_scale_init, "text_config": text,
          "vision_config": {**vision_hf_config(vc), "projection_dim": c.projection_dim}}
    (folder / "config.json").write_text(json.dumps(hf, indent=2))
    write_preprocessor(folder, vc, "CLIPImageProcessor")
    return True


@register_exporter("vit")
def save_clip_vision(model: ViT, folder: Path) -> bool:
    """A CLIP-style lingvis ViT -> HF `CLIPVisionModel` files."""
    cfg = model.config
    if not clip_vision_style(cfg):
        return False
    save_weights({f"vision_model.{k}": v for k, v in vision_state_to_hf(model.state_dict(), cfg).items()}, folder)
    hf = {**vision_hf_config(cfg), "model_type": "clip_vision_model", "architectures": ["CLIPVisionModel"]}
    (folder / "config.json").write_text(json.dumps(hf, indent=2))
    write_preprocessor(folder, cfg, "CLIPImageProcessor")
    return True


@register_loader("clip_vision_model")
def load_clip_vision(hf: dict, hf_state: dict[str, torch.Tensor], path: Path) -> ViT:
    cfg = vision_config_from_hf(hf, path)
    s = {(k[len("vision_model."):] if k.startswith("vision_model.") else k): v for k, v in hf_state.items()}
    s.pop("visual_projection.weight", None)  # CLIPVisionModelWithProjection: projection not part of the tower
    try:
        state = vision_state_from_hf(s, cfg)
    except KeyError as e:
        raise CheckpointError(f"{path}: CLIP vision weight {e.args[0]!r} is missing") from e
    check_leftover(s, path, "CLIP vision")
    model = ViT(cfg)
    load_state(model, state, source=str(path))
    return model
