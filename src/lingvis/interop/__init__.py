"""Hugging Face checkpoint import/export: one module per family, each with an explicit weight-name map."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..io import CheckpointError, read_safetensors

LOADERS: dict[str, Callable[[dict, dict[str, torch.Tensor], Path], nn.Module]] = {}
EXPORTERS: dict[str, Callable[[nn.Module, Path], bool]] = {}  # family -> writer; returns False if no HF twin


def register_loader(model_type: str):
    def deco(fn):
        LOADERS[model_type] = fn
        return fn
    return deco


def register_exporter(family: str):
    def deco(fn):
        EXPORTERS[family] = fn
        return fn
    return deco


def read_hf_weights(path: Path) -> dict[str, torch.Tensor]:
    """model.safetensors, or a sharded model.safetensors.index.json; never pickles."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"corrupt shard index {index}: {e}") from e
        state = {}
        for shard in shards:
            state.update(read_safetensors(path / shard))
        return state
    for name in ("model.safetensors", "diffusion_pytorch_model.safetensors"):  # the second: diffusers models
        if (path / name).is_file():
            return read_safetensors(path / name)
    if (path / "pytorch_model.bin").is_file():
        raise CheckpointError(f"{path} has only pytorch_model.bin (a pickle); lingvis loads safetensors only. "
                              "Convert it with transformers: model.save_pretrained(dir, safe_serialization=True)")
    raise CheckpointError(f"no model.safetensors (or sharded index) in {path}")


def load_hf(path: Path) -> nn.Module:
    if (path / "model_index.json").is_file():  # a diffusers pipeline folder
        from .diffusers import load_pipeline

        return load_pipeline(path)
    try:
        config = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"corrupt {path / 'config.json'}: {e}") from e
    model_type = config.get("model_type") or config.get("_class_name")  # diffusers names the class
    if model_type not in LOADERS:
        raise CheckpointError(f"{path / 'config.json'}: unsupported model_type {model_type!r}; "
                              f"lingvis loads {sorted(LOADERS)}")
    return LOADERS[model_type](config, read_hf_weights(path), path).eval()


from . import gpt2  # noqa: E402,F401  (registers loaders/exporters)
from . import bert  # noqa: E402,F401
from . import vilt  # noqa: E402,F401
from . import marian  # noqa: E402,F401
from . import vit, clip  # noqa: E402,F401
from . import vision_encoder_decoder  # noqa: E402,F401
from . import clip_text  # noqa: E402,F401
from . import diffusers  # noqa: E402,F401
