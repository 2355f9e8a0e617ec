"""HF VideoMAE (`VideoMAEModel`, `VideoMAEForVideoClassification`) and TimeSformer (`TimesformerModel`,
`TimesformerForVideoClassification`) <-> lingvis `VideoTransformer`, with explicit weight-name maps."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..io import CheckpointError, load_state
from ..models.video import VideoConfig, VideoTransformer
from .registry import register_exporter, register_loader
from .vision_common import ACT_TO_HF, activation_from_hf, check_leftover, save_weights

# lingvis block part -> HF layer part (weights and biases)
_COMMON = {"ln_1": "layernorm_before", "ln_2": "layernorm_after", "attn.proj": "attention.output.dense",
           "mlp.fc": "intermediate.dense", "mlp.proj": "output.dense"}
_DIVIDED = {"ln_t": "temporal_layernorm", "temporal_attn.proj": "temporal_attention.output.dense",
            "temporal_attn.fc": "temporal_dense"}


def _labels(hf: dict, n: int) -> list[str]:
    id2label = hf.get("id2label") or {}
    return [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(n)]


def _config(hf: dict, path: Path, labels: list[str] | None, **kind) -> VideoConfig:
    try:
        return VideoConfig(image_size=hf.get("image_size", 224), patch_size=hf.get("patch_size", 16),
                           channels=hf.get("num_channels", 3), frames=hf.get("num_frames", 16),
                           dim=hf["hidden_size"], depth=hf["num_hidden_layers"], heads=hf["num_attention_heads"],
                           mlp_hidden=hf["intermediate_size"],
                           activation=activation_from_hf(hf.get("hidden_act", "gelu"), str(path / "config.json")),
                           qkv_bias=hf.get("qkv_bias", True), labels=labels, **kind)
    except KeyError as e:
        raise CheckpointError(f"{path / 'config.json'}: {e.args[0]!r} is missing") from e


def _pop_pairs(s: dict, out: dict, ours: str, theirs: str) -> None:
    for kind in ("weight", "bias"):
        if f"{theirs}.{kind}" in s:
            out[f"{ours}.{kind}"] = s.pop(f"{theirs}.{kind}")


# ---- VideoMAE ------------------------------------------------------------------------------------------
@register_loader("videomae")
def load_videomae(hf: dict, weights, path: Path) -> VideoTransformer:
    s = {(k[len("videomae."):] if k.startswith("videomae.") else k): v for k, v in weights.items()}
    if not hf.get("use_mean_pooling", True):
        raise CheckpointError(f"{path / 'config.json'}: use_mean_pooling=false is not supported")
    for k in [k for k in s if k.startswith("decoder.") or k in ("encoder_to_decoder.weight", "mask_token")]:
        s.pop(k)  # VideoMAEForPreTraining's reconstruction decoder: not part of the encoder
    classify = "classifier.weight" in s
    labels = _labels(hf, s["classifier.weight"].shape[0]) if classify else None
    cfg = _config(hf, path, labels, tubelet=hf.get("tubelet_size", 2), attention="joint", positions="sinusoidal",
                  pool="mean", norm_eps=hf.get("layer_norm_eps", 1e-12))
    out = {}
    try:
        _pop_pairs(s, out, "patch_embed", "embeddings.patch_embeddings.projection")
        for i in range(cfg.depth):
            p = f"encoder.layer.{i}."
            for ours, theirs in _COMMON.items():
                _pop_pairs(s, out, f"blocks.{i}.{ours}", p + theirs)
            a = p + "attention.attention."
            out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([s.pop(a + f"{x}.weight") for x in ("query", "key", "value")])
            if cfg.qkv_bias:
                q_bias = s.pop(a + "q_bias")
                out[f"blocks.{i}.attn.qkv.bias"] = torch.cat([q_bias, torch.zeros_like(q_bias), s.pop(a + "v_bias")])
        if classify:
            _pop_pairs(s, out, "norm", "fc_norm")
            _pop_pairs(s, out, "head", "classifier")
    except KeyError as e:
        raise CheckpointError(f"{path}: VideoMAE weight {e.args[0]!r} is missing") from e
    check_leftover(s, path, "VideoMAE")
    model = VideoTransformer(cfg)
    load_state(model, out, source=str(path), allow_missing=() if classify else ("norm.weight", "norm.bias"))
    return model


# ---- TimeSformer ---------------------------------------------------------------------------------------
@register_loader("timesformer")
def load_timesformer(hf: dict, weights, path: Path) -> VideoTransformer:
    s = {(k[len("timesformer."):] if k.startswith("timesformer.") else k): v for k, v in weights.items()}
    if hf.get("attention_type", "divided_space_time") != "divided_space_time":
        raise CheckpointError(f"{path / 'config.json'}: attention_type {hf['attention_type']!r} is not supported; "
                              "lingvis loads divided_space_time")
    classify = "classifier.weight" in s
    labels = _labels(hf, s["classifier.weight"].shape[0]) if classify else None
    cfg = _config(hf, path, labels, tubelet=1, attention="divided", positions="learned", cls_token=True,
                  pool="cls", norm_eps=hf.get("layer_norm_eps", 1e-6))
    e = "embeddings."
    try:
        out = {"cls_token": s.pop(e + "cls_token"), "pos_embed": s.pop(e + "position_embeddings"),
               "time_embed": s.pop(e + "time_embeddings"),
               "patch_embed.weight": s.pop(e + "patch_embeddings.projection.weight").unsqueeze(2),
               "patch_embed.bias": s.pop(e + "patch_embeddings.projection.bias")}
        for i in range(cfg.depth):
            p = f"encoder.layer.{i}."
            for ours, theirs in {**_COMMON, **_DIVIDED}.items():
                _pop_pairs(s, out, f"blocks.{i}.{ours}", p + theirs)
            _pop_pairs(s, out, f"blocks.{i}.attn.qkv", p + "attention.attention.qkv")
            _pop_pairs(s, out, f"blocks.{i}.temporal_attn.qkv", p + "temporal_attention.attention.qkv")
        _pop_pairs(s, out, "norm", "layernorm")
        if classify:
            _pop_pairs(s, out, "head", "classifier")
    except KeyError as err:
        raise CheckpointError(f"{path}: TimeSformer weight {err.args[0]!r} is missing") from err
    check_leftover(s, path, "TimeSformer")
    model = VideoTransformer(cfg)
    load_state(model, out, source=str(path))
    return model


# ---- export --------------------------------------------------------------------------------------------
def _hf_common(c: VideoConfig) -> dict:
    hf = {"image_size": c.image_size, "patch_size": c.patch_size, "num_channels": c.channels, "num_frames": c.frames,
          "hidden_size": c.dim, "num_hidden_layers": c.depth, "num_attention_heads": c.heads,
          "intermediate_size": c.mlp_hidden, "hidden_act": ACT_TO_HF[c.activation], "qkv_bias": c.qkv_bias,
          "layer_norm_eps": c.norm_eps, "hidden_dropout_prob": c.dropout, "attention_probs_dropout_prob": c.dropout}
    if c.labels:
        hf.update(id2label={str(i): n for i, n in enumerate(c.labels)}, label2id={n: i for i, n in enumerate(c.labels)})
    return hf


def _export_pairs(own: dict, out: dict, ours: str, theirs: str) -> None:
    for kind in ("weight", "bias"):
        if f"{ours}.{kind}" in own:
            out[f"{theirs}.{kind}"] = own[f"{ours}.{kind}"]


@register_exporter("video_transformer")
def save_video(model: VideoTransformer, folder: Path) -> bool:
    c, own = model.config, model.state_dict()
    if c.activation not in ACT_TO_HF:
        return False
    videomae = (c.attention == "joint" and c.positions == "sinusoidal" and not c.cls_token and c.pool == "mean")
    timesformer = (c.attention == "divided" and c.positions == "learned" and c.cls_token and c.pool == "cls")
    if not (videomae or timesformer):
        return False
    prefix = "videomae." if videomae else "timesformer."
    out: dict[str, torch.Tensor] = {}
    for i in range(c.depth):
        p = f"{prefix}encoder.layer.{i}."
        for ours, theirs in ({**_COMMON, **_DIVIDED} if timesformer else _COMMON).items():
            _export_pairs(own, out, f"blocks.{i}.{ours}", p + theirs)
        if videomae:
            a = p + "attention.attention."
            for name, part in zip(("query", "key", "value"), own[f"blocks.{i}.attn.qkv.weight"].chunk(3)):
                out[a + f"{name}.weight"] = part
            if c.qkv_bias:  # a key bias shifts every score of a query equally: softmax ignores it
                qb, _, vb = own[f"blocks.{i}.attn.qkv.bias"].chunk(3)
                out[a + "q_bias"], out[a + "v_bias"] = qb, vb
        else:
            _export_pairs(own, out, f"blocks.{i}.attn.qkv", p + "attention.attention.qkv")
            _export_pairs(own, out, f"blocks.{i}.temporal_attn.qkv", p + "temporal_attention.attention.qkv")
    e = prefix + "embeddings."
    if videomae:
        _export_pairs(own, out, "patch_embed", e + "patch_embeddings.projection")
        if c.labels:
            _export_pairs(own, out, "norm", "fc_norm")
        hf = {**_hf_common(c), "model_type": "videomae", "tubelet_size": c.tubelet, "use_mean_pooling": True,
              "architectures": ["VideoMAEForVideoClassification" if c.labels else "VideoMAEModel"]}
    else:
        out.update({e + "cls_token": own["cls_token"], e + "position_embeddings": own["pos_embed"],
                    e + "time_embeddings": own["time_embed"],
                    e + "patch_embeddings.projection.weight": own["patch_embed.weight"].squeeze(2),
                    e + "patch_embeddings.projection.bias": own["patch_embed.bias"]})
        _export_pairs(own, out, "norm", prefix + "layernorm")
        hf = {**_hf_common(c), "model_type": "timesformer", "attention_type": "divided_space_time",
              "architectures": ["TimesformerForVideoClassification" if c.labels else "TimesformerModel"]}
    if c.labels:
        _export_pairs(own, out, "head", "classifier")
    else:  # the base models have no prefix
        out = {k[len(prefix):]: v for k, v in out.items()}
    save_weights(out, folder)
    (folder / "config.json").write_text(json.dumps(hf, indent=2))
    return True
