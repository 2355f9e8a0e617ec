"""LoRA adapters in the PEFT format: `adapter_config.json` + `adapter_model.safetensors`, which
`peft.PeftModel.from_pretrained(hf_model, folder)` loads on the Hugging Face export of the base model.

Each family with a Hugging Face twin registers an `AdapterLayout`: where its LoRA projections sit in the
HF model (`blocks.0.attn.qkv` -> `transformer.h.0.attn.c_attn`; BERT's fused q/k/v rows -> three modules),
and which whole modules (heads, norms) PEFT may carry as `modules_to_save`. Export and import are exact:
a fused projection's update B A splits row-wise into (B rows, A) per HF module, and PEFT's per-module
updates add back into the fused weight's rows. Imported adapters are merged into the weights (as lingvis
opens its own LoRA checkpoints); rsLoRA scaling and per-module rank/alpha patterns are honoured.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from ..io import CheckpointError, read_safetensors
from ..jsonfile import read_json

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PREFIX = "base_model.model."  # where PeftModel keeps the wrapped model


class AdapterError(ValueError):
    """An adapter cannot be written or read in the PEFT format (names what is unsupported)."""


@dataclass
class AdapterLayout:
    """Where a family's LoRA projections and extra trained modules sit in its Hugging Face model."""

    modules: dict[str, tuple[str, ...]]               # lingvis Linear -> HF module(s); several split its rows
    saved: dict[str, str] = field(default_factory=dict)  # lingvis module -> HF module, copied whole
    task_type: str | None = None                      # PEFT task type (CAUSAL_LM, SEQ_CLS, ...)
    fan_in_fan_out: bool = False                      # HF keeps these weights as (in, out) (GPT-2 Conv1D)


LAYOUTS: dict[str, Callable[[object], AdapterLayout | None]] = {}  # family -> layout for a config (None: no HF twin)


def register_layout(family: str):
    def deco(fn):
        LAYOUTS[family] = fn
        return fn
    return deco


def layout_for(family: str, config) -> AdapterLayout:
    make = LAYOUTS.get(family)
    layout = make(config) if make else None
    if layout is None:
        raise AdapterError(f"{family} models with this config have no Hugging Face counterpart, so no PEFT adapter "
                           f"(PEFT adapters exist for {sorted(LAYOUTS)} when they export to HF); export merged weights")
    return layout


# ---- lingvis -> PEFT ----------------------------------------------------------------------------------
def adapter_files(family: str, config, lora: dict, state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """(adapter_config.json contents, adapter tensors) for a LoRA model given by its family, model config,
    LoRA settings (`LoRAConfig.to_dict()`) and state dict (base weights + `*.lora_A`/`*.lora_B`)."""
    layout = layout_for(family, config)
    tensors, targets = {}, []
    adapted = sorted(k[:-len(".lora_A")] for k in state if k.endswith(".lora_A"))
    if not adapted:
        raise AdapterError("the model has no LoRA adapters (no *.lora_A weights)")
    for name in adapted:
        hf_names = layout.modules.get(name)
        if hf_names is None:
            raise AdapterError(f"LoRA projection {name!r} has no place in the Hugging Face {family} model")
        a, b = state[f"{name}.lora_A"], state[f"{name}.lora_B"]  # (r, in), (out, r)
        for hf, b_rows in zip(hf_names, b.chunk(len(hf_names), dim=0)):
            tensors[f"{PREFIX}{hf}.lora_A.weight"] = a
            tensors[f"{PREFIX}{hf}.lora_B.weight"] = b_rows
            targets.append(hf)
    saved = _saved_modules(layout, lora, state, set(adapted))
    for ours, hf in saved.items():
        for k, v in state.items():
            if k.startswith(ours + ".") and "." not in k[len(ours) + 1:]:
                tensors[f"{PREFIX}{hf}.{k[len(ours) + 1:]}"] = v
    config = {"peft_type": "LORA", "task_type": layout.task_type, "r": lora["rank"], "lora_alpha": lora["alpha"],
              "lora_dropout": lora.get("dropout", 0.0), "target_modules": sorted(targets), "bias": "none",
              "fan_in_fan_out": layout.fan_in_fan_out, "modules_to_save": sorted(saved.values()) or None,
              "use_rslora": False, "use_dora": False, "init_lora_weights": True, "inference_mode": True,
              "rank_pattern": {}, "alpha_pattern": {}, "base_model_name_or_path": None, "revision": None}
    return config, {k: v.detach().cpu().clone() for k, v in tensors.items()}  # no shared storage (safetensors)


def _saved_modules(layout: AdapterLayout, lora: dict, state: dict, adapted: set[str]) -> dict[str, str]:
    """lingvis -> HF names of the whole modules trained besides the adapters (LoRAConfig.train parts)."""
    parts = tuple(lora.get("train", ()))
    trained = {k.rsplit(".", 1)[0] for k in state
               if ".lora_" not in k and any(part in k for part in parts)}
    unmapped = sorted(m for m in trained if m not in layout.saved)
    if unmapped:
        raise AdapterError(f"trained module(s) {unmapped[:5]} (LoRA `train` parts {list(parts)}) have no PEFT "
                           f"modules_to_save counterpart; known: {sorted(layout.saved)}. Export merged weights")
    return {m: layout.saved[m] for m in sorted(trained)}


def write_adapter(folder: str | Path, family: str, config, lora: dict, state: dict[str, torch.Tensor],
                  base_model: str | None = None) -> Path:
    """Write the PEFT files into `folder` (created if needed; other files are left alone)."""
    cfg, tensors = adapter_files(family, config, lora, state)
    cfg["base_model_name_or_path"] = base_model
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    (folder / ADAPTER_CONFIG).write_text(json.dumps(cfg, indent=2))
    return folder


def save_adapter(model: nn.Module, folder: str | Path, base_model: str | None = None) -> Path:
    """Write the adapters of a model that `lingvis.lora.apply_lora` adapted, in the PEFT format."""
    lora = getattr(model, "lora_config", None)
    if lora is None:
        raise AdapterError(f"{type(model).__name__} has no LoRA adapters (lingvis.lora.apply_lora adds them)")
    return write_adapter(folder, model.family, model.config, lora.to_dict(), model.state_dict(), base_model)


# ---- PEFT -> lingvis ----------------------------------------------------------------------------------
UNSUPPORTED = {"use_dora": "DoRA", "lora_bias": "LoRA bias terms", "layer_replication": "layer replication",
               "target_parameters": "adapters on bare parameters", "trainable_token_indices": "trainable tokens"}


def read_adapter_config(folder: str | Path) -> dict:
    """A PEFT LoRA folder's adapter_config.json, checked for what lingvis can apply."""
    path = Path(folder) / ADAPTER_CONFIG
    if not path.is_file():
        raise CheckpointError(f"no {ADAPTER_CONFIG} in {folder}")
    cfg = read_json(path, CheckpointError, ADAPTER_CONFIG, expect=dict)
    if cfg.get("peft_type") != "LORA":
        raise AdapterError(f"{path}: peft_type {cfg.get('peft_type')!r} is not supported (LORA only)")
    for key, what in UNSUPPORTED.items():
        if cfg.get(key):
            raise AdapterError(f"{path}: {key} ({what}) is not supported")
    if cfg.get("bias", "none") != "none":
        raise AdapterError(f"{path}: bias={cfg['bias']!r} is not supported (adapters with bias='none' only)")
    return cfg


def read_adapter(folder: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(adapter config, tensors) of a PEFT LoRA folder."""
    folder = Path(folder)
    cfg = read_adapter_config(folder)
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        hint = " (adapter_model.bin is a pickle; lingvis reads safetensors only)" if \
            (folder / "adapter_model.bin").is_file() else ""
        raise CheckpointError(f"no {ADAPTER_WEIGHTS} in {folder}{hint}")
    return cfg, read_safetensors(weights)


def _pattern_value(patterns: dict, module: str, default):
    """PEFT's rank_pattern/alpha_pattern lookup: a key matches a module name ending in it (as a regex)."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def apply_adapter(model: nn.Module, folder: str | Path) -> nn.Module:
    """Merge a PEFT LoRA adapter (saved for the HF twin of `model`) into `model`'s weights, in place."""
    cfg, tensors = read_adapter(folder)
    layout = layout_for(model.family, model.config)
    where = {hf: (ours, i, len(names)) for ours, names in layout.modules.items() for i, hf in enumerate(names)}
    saved = {hf: ours for ours, hf in layout.saved.items()}
    params = dict(model.named_parameters())
    lora: dict[str, dict[str, torch.Tensor]] = {}
    copies: dict[str, torch.Tensor] = {}
    for key, t in tensors.items():
        name = key[len(PREFIX):] if key.startswith(PREFIX) else key
        m = re.fullmatch(r"(.+)\.(lora_A|lora_B)(?:\.[^.]+)?\.weight", name)
        if m:
            if m.group(1) not in where:
                raise AdapterError(f"{folder}: adapter on {m.group(1)!r}, which lingvis's {model.family} has no "
                                   "projection for")
            lora.setdefault(m.group(1), {})[m.group(2)] = t
            continue
        module, _, pname = name.rpartition(".")
        module = module.removesuffix(".modules_to_save.default").removesuffix(".modules_to_save")
        if module not in saved or f"{saved[module]}.{pname}" not in params:
            raise AdapterError(f"{folder}: adapter weight {key!r} has no counterpart in lingvis's {model.family}")
        copies[f"{saved[module]}.{pname}"] = t
    with torch.no_grad():
        for hf, ab in lora.items():
            if set(ab) != {"lora_A", "lora_B"}:
                raise AdapterError(f"{folder}: {hf} has {sorted(ab)} but needs lora_A and lora_B")
            ours, i, n = where[hf]
            a, b = ab["lora_A"].float(), ab["lora_B"].float()  # (r, in), (out, r)
            r = a.shape[0]
            alpha = _pattern_value(cfg.get("alpha_pattern") or {}, hf, cfg["lora_alpha"])
            scale = alpha / (r ** 0.5 if cfg.get("use_rslora") else r)
            weight = params[f"{ours}.weight"]
            rows = weight.shape[0] // n
            block = weight[i * rows:(i + 1) * rows]
            if (b @ a).shape != block.shape:
                raise AdapterError(f"{folder}: {hf} update {tuple((b @ a).shape)} does not fit {ours}.weight rows "
                                   f"{tuple(block.shape)}")
            block += (scale * (b @ a)).to(weight.dtype)
        for name, t in copies.items():
            if params[name].shape != t.shape:
                raise AdapterError(f"{folder}: {name} has shape {tuple(t.shape)}, the model "
                                   f"{tuple(params[name].shape)}")
            params[name].copy_(t)
    return model


def base_model_path(folder: str | Path) -> Path:
    """The base model an adapter folder names (`base_model_name_or_path`), as a local folder."""
    folder = Path(folder)
    base = read_adapter_config(folder).get("base_model_name_or_path")
    if not base:
        raise CheckpointError(f"{folder / ADAPTER_CONFIG} names no base_model_name_or_path; load the base model "
                              "and call lingvis.interop.adapters.apply_adapter(model, folder)")
    for candidate in (Path(base), folder / base):
        if candidate.is_dir():
            return candidate
    raise CheckpointError(f"{folder / ADAPTER_CONFIG}: base model {base!r} is not a local folder (no model hub "
                          "access); load the base model and call apply_adapter(model, folder)")
