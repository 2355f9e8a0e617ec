"""HF `CLIPTextModel` (model_type clip_text_model: the text encoder of a diffusers pipeline) <-> the lingvis
CLIP text tower."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..io import CheckpointError, load_state
from ..models.clip_text import CLIPTextConfig, CLIPTextEncoder
from .registry import register_exporter, register_loader
from .clip import _sub, text_config_from_hf, text_state_from_hf, text_state_to_hf
from .vision_common import ACT_TO_HF, check_leftover
from .vision_common import save_weights


@register_loader("clip_text_model")
def load_clip_text(hf: dict, hf_state: dict[str, torch.Tensor], path: Path) -> CLIPTextEncoder:
    cfg = text_config_from_hf(hf, path)
    # transformers < 5 prefixes every weight with `text_model.`; 5.x writes them bare
    s = _sub(hf_state, "text_model.") if any(k.startswith("text_model.") for k in hf_state) else dict(hf_state)
    try:
        state = text_state_from_hf(s, cfg)
    except KeyError as e:
        raise CheckpointError(f"{path}: CLIP text weight {e.args[0]!r} is missing") from e
    check_leftover(s, path, "CLIP text", ignore=("position_ids",))
    model = CLIPTextEncoder(cfg)
    load_state(model, state, source=str(path))
    return model


def clip_text_hf_config(c: CLIPTextConfig, special: dict | None = None) -> dict:
    return {"model_type": "clip_text_model", "architectures": ["CLIPTextModel"], "vocab_size": c.vocab_size,
            "max_position_embeddings": c.context_length, "hidden_size": c.dim, "num_hidden_layers": c.depth,
            "num_attention_heads": c.heads, "intermediate_size": c.mlp_hidden, "hidden_act": ACT_TO_HF[c.activation],
            "layer_norm_eps": c.norm_eps, "attention_dropout": c.dropout, "projection_dim": c.dim,
            **(special or {})}


@register_exporter("clip_text")
def save_clip_text(model: CLIPTextEncoder, folder: Path) -> bool:
    if model.config.activation not in ACT_TO_HF:
        return False
    state = {f"text_model.{k}": v for k, v in text_state_to_hf(model.state_dict(), model.config).items()}
    save_weights(state, folder)
    (folder / "config.json").write_text(json.dumps(clip_text_hf_config(model.config), indent=2))
    return True
