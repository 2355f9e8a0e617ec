"""HF ViLT (`model_type: vilt`: ViltModel, ViltForQuestionAnswering, ViltForMaskedLM) <-> lingvis fusion.

HF keeps query/key/value apart; lingvis fuses them into `attn.qkv`. HF ViLT may pick a random subset of
image patches when `max_image_length > 0`; lingvis always uses every valid patch (HF's -1 behaviour)."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..io import CheckpointError, load_state
from ..jsonfile import read_json
from ..models.fusion import FusionConfig, FusionModel
from .registry import register_exporter, register_loader

ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu",
               "quick_gelu": "quick_gelu", "silu": "silu", "swish": "silu"}
ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "quick_gelu": "quick_gelu", "silu": "silu"}
# lingvis name <-> HF name (below the `vilt.` prefix); weight and bias each
EMBED_MAP = {"text.word_emb": "embeddings.text_embeddings.word_embeddings",
             "text.pos_emb": "embeddings.text_embeddings.position_embeddings",
             "text.type_emb": "embeddings.text_embeddings.token_type_embeddings",
             "text.ln": "embeddings.text_embeddings.LayerNorm",
             "image.stem.proj": "embeddings.patch_embeddings.projection",
             "modality": "embeddings.token_type_embeddings", "ln_f": "layernorm", "pooler.dense": "pooler.dense"}
PARAMS = {"image.cls": "embeddings.cls_token", "image.pos": "embeddings.position_embeddings"}
BLOCK_MAP = {"ln_1": "layernorm_before", "attn.proj": "attention.output.dense", "ln_2": "layernorm_after",
             "mlp.fc": "intermediate.dense", "mlp.proj": "output.dense"}
QKV = ("attention.attention.query", "attention.attention.key", "attention.attention.value")
HEAD_MAP = {"vqa_head.0": "classifier.0", "vqa_head.1": "classifier.1", "vqa_head.3": "classifier.3",
            "mlm.dense": "mlm_score.transform.dense", "mlm.ln": "mlm_score.transform.LayerNorm",
            "mlm.decoder": "mlm_score.decoder"}


def _pair(v) -> int:
    if isinstance(v, (list, tuple)):
        if len(set(v)) != 1:
            raise CheckpointError(f"ViLT non-square size {v} is not supported")
        return int(v[0])
    return int(v)


def config_from_hf(hf: dict, state: dict[str, torch.Tensor]) -> FusionConfig:
    act = hf.get("hidden_act", "gelu")
    if act not in ACT_FROM_HF:
        raise CheckpointError(f"ViLT hidden_act {act!r} is not supported; known: {sorted(ACT_FROM_HF)}")
    if hf.get("qkv_bias", True) is False:
        raise CheckpointError("ViLT qkv_bias=false is not supported")
    id2label = hf.get("id2label") or {}
    archs = hf.get("architectures") or []
    answers = [id2label.get(str(i), id2label.get(i, f"LABEL_{i}")) for i in range(len(id2label))] \
        if "classifier.3.weight" in state else []
    return FusionConfig(
        vocab_size=hf.get("vocab_size", 30522), max_text_len=hf.get("max_position_embeddings", 40),
        type_vocab_size=hf.get("type_vocab_size", 2), modality_types=hf.get("modality_type_vocab_size", 2),
        dim=hf.get("hidden_size", 768), n_layer=hf.get("num_hidden_layers", 12),
        n_head=hf.get("num_attention_heads", 12), mlp_hidden=hf.get("intermediate_size", 3072),
        activation=ACT_FROM_HF[act], norm_eps=hf.get("layer_norm_eps", 1e-12), prenorm=True,
        pad_token_id=hf.get("pad_token_id") or 0, image_size=_pair(hf.get("image_size", 384)),
        patch_size=_pair(hf.get("patch_size", 32)), channels=hf.get("num_channels", 3), image_encoder="patch",
        pooler=any(k.endswith("pooler.dense.weight") for k in state),
        mlm_head="ViltForMaskedLM" in archs or "mlm_score.transform.dense.weight" in state, answers=answers)


def _strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {(k[len("vilt."):] if k.startswith("vilt.") else k): v for k, v in state.items()}


def state_from_hf(hf_state: dict[str, torch.Tensor], cfg: FusionConfig) -> dict[str, torch.Tensor]:
    s = _strip(hf_state)
    out = {}
    for ours, theirs in EMBED_MAP.items():
        for kind in ("weight", "bias"):
            if f"{theirs}.{kind}" in s:
                out[f"{ours}.{kind}"] = s.pop(f"{theirs}.{kind}")
    for ours, theirs in PARAMS.items():
        out[ours] = s.pop(theirs)
    for i in range(cfg.n_layer):
        pre = f"encoder.layer.{i}."
        for ours, theirs in BLOCK_MAP.items():
            for kind in ("weight", "bias"):
                out[f"blocks.{i}.{ours}.{kind}"] = s.pop(pre + f"{theirs}.{kind}")
        for kind in ("weight", "bias"):
            out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([s.pop(pre + f"{q}.{kind}") for q in QKV])
    for ours, theirs in HEAD_MAP.items():
        for kind in ("weight", "bias"):
            if f"{theirs}.{kind}" in s:
                out[f"{ours}.{kind}"] = s.pop(f"{theirs}.{kind}")
    s.pop("mlm_score.bias", None)  # HF alias of mlm_score.decoder.bias
    leftover = [k for k in s if not k.endswith(("position_ids", "token_type_ids"))]
    if leftover:
        raise CheckpointError(f"unexpected ViLT weight(s): {leftover[:5]}")
    return out


def _read_preprocessor(path: Path, cfg: FusionConfig) -> None:
    """Image mean/std from preprocessor_config.json, when there is one."""
    pre = path / "preprocessor_config.json"
    if not pre.is_file():
        return
    data = read_json(pre, CheckpointError, expect=dict)
    for key, field in (("image_mean", "image_mean"), ("image_std", "image_std")):
        value = data.get(key)
        if isinstance(value, (list, tuple)) and len(value) == cfg.channels:
            setattr(cfg, field, [float(v) for v in value])


@register_loader("vilt")
def load_vilt(hf_config: dict, hf_state: dict[str, torch.Tensor], path: Path) -> FusionModel:
    cfg = config_from_hf(hf_config, _strip(hf_state))
    _read_preprocessor(path, cfg)
    model = FusionModel(cfg)
    try:
        state = state_from_hf(hf_state, cfg)
    except KeyError as e:
        raise CheckpointError(f"{path}: ViLT weight {e.args[0]!r} is missing") from e
    if cfg.mlm_head:
        state.pop("mlm.decoder.weight", None)  # tied to the word embeddings
    load_state(model, state, source=str(path))
    return model


def exportable(cfg: FusionConfig) -> bool:
    """Configs with a ViLT twin: patch stem, pre-norm, CLS pooler, no heads HF ViLT lacks."""
    return (cfg.image_encoder == "patch" and cfg.prenorm and cfg.pooler and cfg.pool == "cls"
            and cfg.activation in ACT_TO_HF and not (cfg.itm_head or cfg.mif_head or cfg.itc_head)
            and not (cfg.mlm_head and cfg.answers) and cfg.vqa_readout == "pooled")


def _export_state(model: FusionModel) -> dict[str, torch.Tensor]:
    cfg, own = model.config, model.state_dict()
    base = "vilt." if (cfg.answers or cfg.mlm_head) else ""
    state = {}
    for ours, theirs in {**EMBED_MAP, **PARAMS}.items():
        for key in ((ours,) if ours in PARAMS else (f"{ours}.weight", f"{ours}.bias")):
            if key in own:
                state[base + key.replace(ours, theirs, 1)] = own[key]
    for i in range(cfg.n_layer):
        pre = f"{base}encoder.layer.{i}."
        for ours, theirs in BLOCK_MAP.items():
            for kind in ("weight", "bias"):
                state[pre + f"{theirs}.{kind}"] = own[f"blocks.{i}.{ours}.{kind}"]
        for kind in ("weight", "bias"):
            for q, t in zip(QKV, own[f"blocks.{i}.attn.qkv.{kind}"].chunk(3)):
                state[pre + f"{q}.{kind}"] = t
    for ours, theirs in HEAD_MAP.items():
        for kind in ("weight", "bias"):
            if f"{ours}.{kind}" in own and not (ours == "mlm.decoder" and kind == "weight"):
                state[f"{theirs}.{kind}"] = own[f"{ours}.{kind}"]
    return state


def hf_config(cfg: FusionConfig) -> dict:
    arch = "ViltForQuestionAnswering" if cfg.answers else "ViltForMaskedLM" if cfg.mlm_head else "ViltModel"
    hf = {"model_type": "vilt", "architectures": [arch], "vocab_size": cfg.vocab_size,
          "type_vocab_size": cfg.type_vocab_size, "modality_type_vocab_size": cfg.modality_types,
          "max_position_embeddings": cfg.max_text_len, "hidden_size": cfg.dim, "num_hidden_layers": cfg.n_layer,
          "num_attention_heads": cfg.n_head, "intermediate_size": cfg.mlp_hidden,
          "hidden_act": ACT_TO_HF[cfg.activation], "hidden_dropout_prob": cfg.dropout,
          "attention_probs_dropout_prob": cfg.dropout, "layer_norm_eps": cfg.norm_eps,
          "image_size": cfg.image_size, "patch_size": cfg.patch_size, "num_channels": cfg.channels,
          "qkv_bias": True, "max_image_length": -1, "pad_token_id": cfg.pad_token_id, "tie_word_embeddings": True}
    if cfg.answers:
        hf["id2label"] = {str(i): a for i, a in enumerate(cfg.answers)}
        hf["label2id"] = {a: i for i, a in enumerate(cfg.answers)}
    return hf


@register_exporter("fusion")
def save_vilt(model: FusionModel, folder: Path) -> bool:
    cfg = model.config
    if not exportable(cfg):
        return False
    state = {k: v.detach().contiguous().cpu() for k, v in _export_state(model).items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(hf_config(cfg), indent=2))
    pre = {"image_processor_type": "ViltImageProcessor", "do_resize": True, "size": {"shortest_edge": cfg.image_size},
           "size_divisor": cfg.patch_size, "do_normalize": True, "image_mean": list(cfg.image_mean),
           "image_std": list(cfg.image_std), "do_rescale": True, "rescale_factor": 1 / 255, "do_pad": True}
    (folder / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    return True
