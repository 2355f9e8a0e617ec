"""Loader and exporter registries for Hugging Face folders, and reading HF weights (safetensors only).
Family modules of this package register into it; nothing here imports them."""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ..io import CheckpointError

LOADERS: dict[str, Callable[[dict, dict[str, torch.Tensor], Path], nn.Module]] = {}
# family -> writers tried in order; each returns False when the model has no HF twin in its format
EXPORTERS: dict[str, list[Callable[[nn.Module, Path], bool]]] = {}


def register_loader(*model_types: str):
    def deco(fn):
        for t in model_types:
            LOADERS[t] = fn
        return fn
    return deco


def register_exporter(family: str):
    def deco(fn):
        EXPORTERS.setdefault(family, []).append(fn)
        return fn
    return deco


class HFWeights(Mapping):
    """The tensors of an HF folder (`model.safetensors` or a sharded `model.safetensors.index.json`), read
    one at a time from memory-mapped files: a converter that `pop`s each tensor as it copies it never holds
    a second full copy of the weights. Never unpickles."""

    def __init__(self, path: Path):
        self.path = Path(path)
        index = self.path / "model.safetensors.index.json"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise CheckpointError(f"corrupt shard index {index}: {e}") from e
        elif (self.path / "model.safetensors").is_file():
            weight_map = None
        elif (self.path / "pytorch_model.bin").is_file():
            raise CheckpointError(f"{self.path} has only pytorch_model.bin (a pickle); lingvis loads safetensors "
                                  "only. Convert it with transformers: model.save_pretrained(dir, "
                                  "safe_serialization=True)")
        else:
            raise CheckpointError(f"no model.safetensors (or sharded index) in {self.path}")
        shards = sorted(set(weight_map.values())) if weight_map else ["model.safetensors"]
        missing = [s for s in shards if not (self.path / s).is_file()]
        if missing:
            raise CheckpointError(f"{index}: shard file(s) missing: {', '.join(missing)}")
        self._files = {}
        try:
            for shard in shards:
                self._files[shard] = safe_open(str(self.path / shard), framework="pt")
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"corrupt or unreadable safetensors file {self.path / shard}: {e}") from e
        self._where = {}
        for shard, f in self._files.items():
            for k in f.keys():
                self._where[k] = shard
        if weight_map:
            absent = [k for k, s in weight_map.items() if self._where.get(k) != s]
            if absent:
                raise CheckpointError(f"{index} lists tensor {absent[0]!r} in {weight_map[absent[0]]}, which does "
                                      f"not hold it ({len(absent)} such)")

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._where:
            raise KeyError(key)
        return self._files[self._where[key]].get_tensor(key)

    def __iter__(self):
        return iter(list(self._where))

    def __len__(self) -> int:
        return len(self._where)

    def pop(self, key: str, *default):
        if key not in self._where:
            if default:
                return default[0]
            raise KeyError(key)
        t = self[key]
        del self._where[key]
        return t

    def nbytes(self) -> int:
        """Bytes of all tensors on disk (their stored dtype)."""
        total = 0
        for k, shard in self._where.items():
            sl = self._files[shard].get_slice(k)
            total += math.prod(sl.get_shape()) * _DTYPE_BYTES.get(sl.get_dtype(), 4)
        return total


_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def read_hf_weights(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of an HF folder in memory (small models; large ones use `HFWeights` directly)."""
    weights = HFWeights(path)
    return {k: weights[k] for k in weights}


def load_hf(path: Path) -> nn.Module:
    try:
        config = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"corrupt {path / 'config.json'}: {e}") from e
    model_type = config.get("model_type")
    if model_type not in LOADERS:
        raise CheckpointError(f"{path / 'config.json'}: unsupported model_type {model_type!r}; "
                              f"lingvis loads {sorted(LOADERS)}")
    return LOADERS[model_type](config, HFWeights(path), path).eval()



def export_hf(model: nn.Module, folder: Path) -> bool:
    """Write `model` as Hugging Face files into `folder`; False when its family/config has no HF twin."""
    return any(writer(model, folder) for writer in EXPORTERS.get(getattr(model, "family", ""), []))
