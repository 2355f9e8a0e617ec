"""HF `ViTModel` / `ViTForImageClassification` (model_type vit) <-> lingvis ViT / ImageClassifier.
(CLIP-style ViTs: `CLIPVisionModel` in interop/clip.py.)"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from ..io import CheckpointError, load_state
from ..models.image_classifier import ImageClassifier, ImageClassifierConfig
from ..models.vit import ViT, ViTConfig
from .registry import register_exporter, register_loader
from .vision_common import (ACT_TO_HF, VIT_BLOCK, activation_from_hf, blocks_from_hf, blocks_to_hf,
                            check_leftover, read_preprocessor, save_weights, write_preprocessor)


# ---- HF ViT ------------------------------------------------------------------------------------------
def vit_config_from_hf(hf: dict, path: Path, pooler: bool) -> ViTConfig:
    dim = hf.get("hidden_size", 768)
    return ViTConfig(image_size=hf.get("image_size", 224), patch_size=hf.get("patch_size", 16),
                     channels=hf.get("num_channels", 3), dim=dim, depth=hf.get("num_hidden_layers", 12),
                     heads=hf.get("num_attention_heads", 12), mlp_hidden=hf.get("intermediate_size", 3072),
                     activation=activation_from_hf(hf.get("hidden_act", "gelu"), str(path / "config.json")),
                     norm_eps=hf.get("layer_norm_eps", 1e-12), pooler=pooler,
                     **{"image_mean": [0.5] * 3, "image_std": [0.5] * 3, **read_preprocessor(path)})


def vit_state_from_hf(s: dict, cfg: ViTConfig, path: Path) -> dict:
    out = {"cls_token": s.pop("embeddings.cls_token").reshape(cfg.dim),
           "pos_embed": s.pop("embeddings.position_embeddings").reshape(-1, cfg.dim),
           "patch_embed.weight": s.pop("embeddings.patch_embeddings.projection.weight"),
           "patch_embed.bias": s.pop("embeddings.patch_embeddings.projection.bias"),
           "ln_post.weight": s.pop("layernorm.weight"), "ln_post.bias": s.pop("layernorm.bias")}
    out.update(blocks_from_hf(s, cfg.depth, "encoder.layer.", "blocks.", VIT_BLOCK, cfg.dim))
    if cfg.pooler:
        out["pooler.weight"], out["pooler.bias"] = s.pop("pooler.dense.weight"), s.pop("pooler.dense.bias")
    s.pop("embeddings.mask_token", None)
    return out


@register_loader("vit")
def load_vit(hf: dict, hf_state: dict[str, torch.Tensor], path: Path):
    s = {(k[4:] if k.startswith("vit.") else k): v for k, v in hf_state.items()}
    classify = "classifier.weight" in s
    pooler = "pooler.dense.weight" in s and hf.get("pooler_act", "tanh") == "tanh" and not classify
    cfg = vit_config_from_hf(hf, path, pooler)
    try:
        state = vit_state_from_hf(s, cfg, path)
        if classify:
            head = {"head.weight": s.pop("classifier.weight"), "head.bias": s.pop("classifier.bias")}
        for k in ("pooler.dense.weight", "pooler.dense.bias"):  # unused pooler (or one under a classifier)
            s.pop(k, None)
    except KeyError as e:
        raise CheckpointError(f"{path}: ViT weight {e.args[0]!r} is missing") from e
    check_leftover(s, path, "ViT")
    if not classify:
        model = ViT(cfg)
        load_state(model, state, source=str(path))
        return model
    id2label = hf.get("id2label") or {str(i): f"LABEL_{i}" for i in range(head["head.weight"].shape[0])}
    labels = [id2label[str(i)] if str(i) in id2label else id2label[i] for i in range(len(id2label))]
    model = ImageClassifier(ImageClassifierConfig("vit", dataclasses.asdict(cfg), labels))
    load_state(model, {**{f"backbone.{k}": v for k, v in state.items()}, **head}, source=str(path))
    return model


def hf_vit_style(cfg: ViTConfig) -> bool:
    return (not cfg.pre_norm and cfg.patch_bias and cfg.pool == "cls" and cfg.final_norm == "tokens"
            and cfg.activation in ACT_TO_HF)




def vit_state_to_hf(own: dict, cfg: ViTConfig) -> dict:
    out = {"embeddings.cls_token": own["cls_token"].reshape(1, 1, -1),
           "embeddings.position_embeddings": own["pos_embed"].unsqueeze(0),
           "embeddings.patch_embeddings.projection.weight": own["patch_embed.weight"],
           "embeddings.patch_embeddings.projection.bias": own["patch_embed.bias"],
           "layernorm.weight": own["ln_post.weight"], "layernorm.bias": own["ln_post.bias"]}
    out.update(blocks_to_hf(own, cfg.depth, "encoder.layer.", "blocks.", VIT_BLOCK))
    if cfg.pooler:
        out["pooler.dense.weight"], out["pooler.dense.bias"] = own["pooler.weight"], own["pooler.bias"]
    return out


def vit_hf_config(cfg: ViTConfig) -> dict:
    return {"model_type": "vit", "hidden_size": cfg.dim, "num_hidden_layers": cfg.depth,
            "num_attention_heads": cfg.heads, "intermediate_size": cfg.mlp_hidden,
            "hidden_act": ACT_TO_HF[cfg.activation], "layer_norm_eps": cfg.norm_eps, "image_size": cfg.image_size,
            "patch_size": cfg.patch_size, "num_channels": cfg.channels, "qkv_bias": True,
            "hidden_dropout_prob": cfg.dropout, "attention_probs_dropout_prob": cfg.dropout,
            "pooler_act": "tanh", "pooler_output_size": cfg.dim}




@register_exporter("vit")
def save_vit(model: ViT, folder: Path) -> bool:
    cfg = model.config
    own = model.state_dict()
    if hf_vit_style(cfg):
        save_weights(vit_state_to_hf(own, cfg), folder)
        (folder / "config.json").write_text(json.dumps({**vit_hf_config(cfg), "architectures": ["ViTModel"]},
                                                       indent=2))
        write_preprocessor(folder, cfg, "ViTImageProcessor")
        return True
    return False


@register_exporter("image_classifier")
def save_image_classifier(model: ImageClassifier, folder: Path) -> bool:
    c = model.config
    if c.backbone_family != "vit" or not hf_vit_style(model.backbone.config) or model.backbone.config.pooler:
        return False
    bcfg = model.backbone.config
    own = model.state_dict()
    state = {f"vit.{k}": v for k, v in vit_state_to_hf({k[9:]: v for k, v in own.items()
                                                        if k.startswith("backbone.")}, bcfg).items()}
    state.update({"classifier.weight": own["head.weight"], "classifier.bias": own["head.bias"]})
    save_weights(state, folder)
    hf = {**vit_hf_config(bcfg), "architectures": ["ViTForImageClassification"],
          "id2label": {str(i): n for i, n in enumerate(c.labels)}, "label2id": {n: i for i, n in enumerate(c.labels)}}
    (folder / "config.json").write_text(json.dumps(hf, indent=2))
    write_preprocessor(folder, bcfg, "ViTImageProcessor")
    return True
