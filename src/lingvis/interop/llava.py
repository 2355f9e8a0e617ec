"""HF `LlavaForConditionalGeneration` (model_type llava) <-> lingvis Llava: a CLIP vision tower
(`vision_config`, clip_vision_model), the `multi_modal_projector` (linear_1, `projector_hidden_act`,
linear_2) and a Llama-family language model (`text_config`: llama / mistral / qwen2 / qwen3).

Weights come in the layouts transformers has written: `vision_tower.[vision_model.]…`,
`language_model.model.…` + `language_model.lm_head.weight` (4.x files and 5.x saves), or
`model.vision_tower.…`, `model.language_model.…` + `lm_head.weight` (4.52+ in-memory names). Export writes the
classic layout with `vision_tower.vision_model.`, which every transformers version reads. Image
preprocessing (mean, std, resize, crop, `do_pad`) comes from the folder's `preprocessor_config.json`."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import torch

from ..io import CheckpointError, load_state
from ..models.gpt import GPTConfig
from ..models.llava import Llava, LlavaConfig, parse_projector
from ..models.vit import ViTConfig
from .clip import vision_config_from_hf, vision_hf_config, vision_state_from_hf, vision_state_to_hf
from .llama import MODEL_TYPES, config_from_hf, hf_config, hf_model_type, weight_map
from .registry import register_exporter, register_loader
from .vision_common import ACT_FROM_HF, ACT_TO_HF, check_leftover, clip_vision_style, save_weights, write_preprocessor

VISION_PREFIXES = ("model.vision_tower.vision_model.", "model.vision_tower.", "vision_tower.vision_model.",
                   "vision_tower.")
TEXT_PREFIXES = (("model.language_model.", "model."), ("language_model.model.", "model."),
                 ("language_model.lm_head.", "lm_head."), ("lm_head.", "lm_head."))
PROJ_PREFIXES = ("model.multi_modal_projector.", "multi_modal_projector.")


def _split(weights: Mapping[str, torch.Tensor], path: Path) -> tuple[dict, dict, dict]:
    """(vision, text in LlamaForCausalLM names, projector) tensors of an HF LLaVA folder."""
    vision, text, proj, other = {}, {}, {}, []
    for k in list(weights):
        if k.startswith(PROJ_PREFIXES):
            proj[k.split("multi_modal_projector.", 1)[1]] = weights[k]
            continue
        v = next((p for p in VISION_PREFIXES if k.startswith(p)), None)
        if v is not None:
            vision[k[len(v):]] = weights[k]
            continue
        t = next(((a, b) for a, b in TEXT_PREFIXES if k.startswith(a)), None)
        if t is not None:
            text[t[1] + k[len(t[0]):]] = weights[k]
            continue
        other.append(k)
    if other:
        raise CheckpointError(f"{path}: unexpected LLaVA weight(s) {other[:5]}")
    return vision, text, proj


def _text_config(hf: dict, path: Path) -> tuple[dict, GPTConfig]:
    t = hf.get("text_config") or {}
    kind = t.get("model_type", "llama")
    if kind not in MODEL_TYPES:
        raise CheckpointError(f"{path / 'config.json'}: text_config model_type {kind!r} is not supported; lingvis "
                              f"reads LLaVA folders with a {sorted(MODEL_TYPES)} language model")
    if "tie_word_embeddings" not in t and "tie_word_embeddings" in hf:
        t = {**t, "tie_word_embeddings": hf["tie_word_embeddings"]}
    return t, config_from_hf(t, path)


def _vision_config(hf: dict, path: Path) -> ViTConfig:
    v = hf.get("vision_config") or {}
    kind = v.get("model_type", "clip_vision_model")
    if kind != "clip_vision_model":
        raise CheckpointError(f"{path / 'config.json'}: vision_config model_type {kind!r} is not supported; "
                              "lingvis reads LLaVA folders with a CLIP vision tower (clip_vision_model)")
    return vision_config_from_hf(v, path)


def _pads(path: Path) -> bool:
    f = path / "preprocessor_config.json"
    if not f.is_file():
        return False
    try:
        return bool(json.loads(f.read_text()).get("do_pad", False))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"corrupt {f}: {e}") from e


def config_from_hf_llava(hf: dict, path: Path) -> LlavaConfig:
    vcfg, (_, tcfg) = _vision_config(hf, path), _text_config(hf, path)
    act = hf.get("projector_hidden_act", "gelu")
    if act not in ACT_FROM_HF:
        raise CheckpointError(f"{path / 'config.json'}: projector_hidden_act {act!r} is not supported; known: "
                              f"{sorted(ACT_FROM_HF)}")
    strategy = hf.get("vision_feature_select_strategy", "default")
    try:
        return LlavaConfig(vision=dataclasses.asdict(vcfg), text=dataclasses.asdict(tcfg),
                           projector=f"mlp2x_{ACT_FROM_HF[act]}",
                           projector_bias=bool(hf.get("multimodal_projector_bias", True)),
                           vision_feature_layer=hf.get("vision_feature_layer", -2),
                           vision_feature_select_strategy=strategy,
                           image_token_id=int(hf.get("image_token_index", hf.get("image_token_id", 32000))),
                           pad_to_square=_pads(path))
    except ValueError as e:
        raise CheckpointError(f"{path / 'config.json'}: {e}") from e


@register_loader("llava")
def load_llava(hf: dict, weights, path: Path) -> Llava:
    cfg = config_from_hf_llava(hf, path)
    vision, text, proj = _split(weights, path)
    vcfg = ViTConfig(**cfg.vision)
    tcfg = GPTConfig(**cfg.text)
    try:
        state = {f"vision.{k}": v for k, v in vision_state_from_hf(vision, vcfg).items()}
        for ours, theirs in weight_map(tcfg):
            parts = [text.pop(k) for k in theirs]
            state[f"llm.{ours}"] = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
        for i in (0, 1):
            state[f"projector.layers.{i}.weight"] = proj.pop(f"linear_{i + 1}.weight")
            if cfg.projector_bias:
                state[f"projector.layers.{i}.bias"] = proj.pop(f"linear_{i + 1}.bias")
    except KeyError as e:
        raise CheckpointError(f"{path}: LLaVA weight {e.args[0]!r} is missing") from e
    check_leftover(vision, path, "LLaVA vision tower", ignore=("position_ids",))
    if tcfg.tie_embeddings:
        text.pop("lm_head.weight", None)
    check_leftover(text, path, "LLaVA language model", ignore=("rotary_emb.inv_freq",))
    check_leftover(proj, path, "LLaVA projector")
    model = Llava(cfg)
    load_state(model, state, source=str(path))
    return model


def lingvis_only(c) -> str | None:
    """The LlavaConfig field set to a lingvis-only image-token layout (HF's LLaVA has neither), or None."""
    if c.spatial_merge != 1:
        return f"spatial_merge={c.spatial_merge} (merged neighbouring patches) is lingvis-only: HF LLaVA has no merger"
    if c.image_position != "none":
        what = {"rowcol": "learned row/column embeddings", "onehot": "one-hot row/column projector inputs"}
        return (f"image_position={c.image_position!r} ({what.get(c.image_position, 'image-token positions')}) is "
                "lingvis-only: HF LLaVA has none")
    return None


def exportable(model: Llava) -> str | None:
    """The HF text model type a lingvis Llava exports with, or None when it has no HF twin."""
    c = model.config
    if lingvis_only(c):
        return None
    depth, act = parse_projector(c.projector)
    if depth != 2 or act not in ACT_TO_HF or not clip_vision_style(model.vision.config):
        return None
    return hf_model_type(model.llm.config)


@register_exporter("llava")
def save_llava(model: Llava, folder: Path) -> bool:
    kind = exportable(model)
    if kind is None:
        return False
    c, vc, tc = model.config, model.vision.config, model.llm.config
    own = model.state_dict()
    sub = lambda prefix: {k[len(prefix):]: v for k, v in own.items() if k.startswith(prefix)}  # noqa: E731
    state = {f"vision_tower.vision_model.{k}": v for k, v in vision_state_to_hf(sub("vision."), vc).items()}
    llm = sub("llm.")
    for ours, theirs in weight_map(tc):
        t = llm[ours]
        if len(theirs) == 1:
            parts = [t]
        elif ours.endswith(("attn.qkv.weight", "attn.qkv.bias")):
            D, H, KV = tc.head_size, tc.n_head, tc.n_kv_head or tc.n_head
            parts = t.split([H * D, KV * D, KV * D], dim=0)
        else:
            parts = t.split(t.shape[0] // 2, dim=0)
        for name, part in zip(theirs, parts):
            key = "language_model.lm_head." + name[len("lm_head."):] if name.startswith("lm_head.") \
                else "language_model." + name
            state[key] = part
    for i in (0, 1):
        state[f"multi_modal_projector.linear_{i + 1}.weight"] = own[f"projector.layers.{i}.weight"]
        if c.projector_bias:
            state[f"multi_modal_projector.linear_{i + 1}.bias"] = own[f"projector.layers.{i}.bias"]
    save_weights(state, folder)
    _, act = parse_projector(c.projector)
    hf = {"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"],
          "vision_config": vision_hf_config(vc), "text_config": hf_config(tc, kind),
          "image_token_index": c.image_token_id, "image_seq_length": model.tokens_per_image,
          "projector_hidden_act": ACT_TO_HF[act], "multimodal_projector_bias": c.projector_bias,
          "vision_feature_layer": c.vision_feature_layer,
          "vision_feature_select_strategy": c.vision_feature_select_strategy,
          "tie_word_embeddings": tc.tie_embeddings, "dtype": "float32"}
    (folder / "config.json").write_text(json.dumps(hf, indent=2))
    write_preprocessor(folder, vc, "CLIPImageProcessor")
    if c.pad_to_square:
        pp = json.loads((folder / "preprocessor_config.json").read_text())
        (folder / "preprocessor_config.json").write_text(json.dumps({**pp, "do_pad": True}, indent=2))
    processor = {"processor_class": "LlavaProcessor", "patch_size": vc.patch_size,
                 "vision_feature_select_strategy": c.vision_feature_select_strategy, "image_token": "<image>",
                 "num_additional_image_tokens": 1}
    (folder / "processor_config.json").write_text(json.dumps(processor, indent=2))
    return True


save_llava.why_not = lambda model: lingvis_only(model.config)
