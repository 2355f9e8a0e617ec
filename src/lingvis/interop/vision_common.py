"""Pieces shared by the ViT and CLIP converters: block weight maps (separate q/k/v <-> fused qkv),
activation names, and `preprocessor_config.json` read/write."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from safetensors.torch import save_file

from ..io import CheckpointError
from ..jsonfile import read_json

ACT_FROM_HF = {"gelu": "gelu", "quick_gelu": "quick_gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
               "relu": "relu", "silu": "silu", "swish": "silu"}
ACT_TO_HF = {"gelu": "gelu", "quick_gelu": "quick_gelu", "gelu_tanh": "gelu_pytorch_tanh", "relu": "relu",
             "silu": "silu"}

# lingvis block parts -> HF names, per layout
CLIP_BLOCK = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
              "attn.proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
              "mlp.fc": "mlp.fc1", "mlp.proj": "mlp.fc2"}
VIT_BLOCK = {"q": "attention.attention.query", "k": "attention.attention.key", "v": "attention.attention.value",
             "attn.proj": "attention.output.dense", "ln_1": "layernorm_before", "ln_2": "layernorm_after",
             "mlp.fc": "intermediate.dense", "mlp.proj": "output.dense"}


def activation_from_hf(name: str, where: str) -> str:
    if name not in ACT_FROM_HF:
        raise CheckpointError(f"{where}: hidden_act {name!r} is not supported; known: {sorted(ACT_FROM_HF)}")
    return ACT_FROM_HF[name]


def blocks_from_hf(s: dict[str, torch.Tensor], n_layer: int, hf_prefix: str, ours: str, names: dict,
                   dim: int) -> dict[str, torch.Tensor]:
    """Pop layer weights `hf_prefix{i}.` from `s` into lingvis names `ours{i}.`; q, k, v are concatenated.
    A missing q/k/v bias (qkv_bias=False) becomes zeros."""
    out = {}
    for i in range(n_layer):
        hp, op = f"{hf_prefix}{i}.", f"{ours}{i}."
        out[op + "attn.qkv.weight"] = torch.cat([s.pop(f"{hp}{names[x]}.weight") for x in "qkv"])
        biases = [s.pop(f"{hp}{names[x]}.bias", None) for x in "qkv"]
        out[op + "attn.qkv.bias"] = torch.cat([b if b is not None else torch.zeros(dim) for b in biases])
        for part in ("attn.proj", "ln_1", "ln_2", "mlp.fc", "mlp.proj"):
            for kind in ("weight", "bias"):
                out[f"{op}{part}.{kind}"] = s.pop(f"{hp}{names[part]}.{kind}")
    return out


def blocks_to_hf(own: dict[str, torch.Tensor], n_layer: int, hf_prefix: str, ours: str, names: dict
                 ) -> dict[str, torch.Tensor]:
    out = {}
    for i in range(n_layer):
        hp, op = f"{hf_prefix}{i}.", f"{ours}{i}."
        for kind in ("weight", "bias"):
            for x, t in zip("qkv", own[f"{op}attn.qkv.{kind}"].chunk(3)):
                out[f"{hp}{names[x]}.{kind}"] = t
            for part in ("attn.proj", "ln_1", "ln_2", "mlp.fc", "mlp.proj"):
                out[f"{hp}{names[part]}.{kind}"] = own[f"{op}{part}.{kind}"]
    return out


def check_leftover(s: dict, path: Path, what: str, ignore: tuple[str, ...] = ()) -> None:
    left = [k for k in s if not (ignore and k.endswith(ignore))]
    if left:
        raise CheckpointError(f"{path}: unexpected {what} weight(s): {left[:5]}")


def _size(value, key: str) -> int | None:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, dict):
        for k in ("shortest_edge", "height", key):
            if k in value:
                return int(value[k])
    raise CheckpointError(f"preprocessor_config.json: cannot read {key} from {value!r}")


def read_preprocessor(path: Path) -> dict:
    """Image-tower config fields (image_mean, image_std, resize_size) from `preprocessor_config.json`."""
    f = path / "preprocessor_config.json"
    if not f.is_file():
        return {}
    pp = read_json(f, CheckpointError, expect=dict)
    out = {}
    if "image_mean" in pp:
        out["image_mean"] = [float(x) for x in pp["image_mean"]]
    if "image_std" in pp:
        out["image_std"] = [float(x) for x in pp["image_std"]]
    resize = _size(pp.get("size"), "size")
    if pp.get("do_center_crop", False) and resize is not None:
        out["resize_size"] = resize
    return out


def write_preprocessor(folder: Path, cfg, processor: str) -> None:
    """`preprocessor_config.json` for an image tower config (CLIPImageProcessor or ViTImageProcessor)."""
    s = cfg.image_size
    common = {"do_resize": True, "resample": 3 if processor == "CLIPImageProcessor" else 2, "do_rescale": True,
              "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": list(cfg.image_mean),
              "image_std": list(cfg.image_std), "image_processor_type": processor}
    if processor == "CLIPImageProcessor":
        pp = {**common, "size": {"shortest_edge": cfg.resize_size or s}, "do_center_crop": True,
              "crop_size": {"height": s, "width": s}, "do_convert_rgb": True}
    else:
        pp = {**common, "size": {"height": s, "width": s}}
    (folder / "preprocessor_config.json").write_text(json.dumps(pp, indent=2))


def clip_vision_style(cfg) -> bool:
    return (cfg.pre_norm and not cfg.patch_bias and cfg.pool == "cls" and cfg.final_norm == "pooled"
            and not cfg.pooler and cfg.activation in ACT_TO_HF)


def save_weights(state: dict, folder: Path) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(folder / "model.safetensors"),
              metadata={"format": "pt"})
