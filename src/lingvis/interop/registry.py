"""Loader and exporter registries for Hugging Face folders, and reading HF weights (safetensors only).
Family modules of this package register into it; nothing here imports them."""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from ..io import CheckpointError
from ..jsonfile import read_json

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


_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


SINGLE_FILES = ("model.safetensors", "diffusion_pytorch_model.safetensors")  # transformers, diffusers
CONVERT_CHUNK = 8 << 20  # bytes read at a time when a tensor changes dtype on the way in


def _safetensors_header(path: Path) -> tuple[int, dict]:
    """(offset of the data, {name: {"dtype", "shape", "data_offsets"}}) of a safetensors file."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or n > 100 * 2**20:
                raise ValueError(f"header length {n} is implausible")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"corrupt or unreadable safetensors file {path}: {e}") from e
    header.pop("__metadata__", None)
    return 8 + n, header


class HFWeights(Mapping):
    """The tensors of an HF folder (`model.safetensors` or a sharded `model.safetensors.index.json`), each
    read from disk when asked for (plain reads, no memory map): a converter that `pop`s each tensor as it
    copies it holds the model plus one tensor, never a second copy of the weights. Never unpickles."""

    def __init__(self, path: Path):
        self.path = Path(path)
        index = self.path / "model.safetensors.index.json"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise CheckpointError(f"corrupt shard index {index}: {e}") from e
        elif (self.path / "diffusion_pytorch_model.safetensors.index.json").is_file():  # diffusers, sharded
            index = self.path / "diffusion_pytorch_model.safetensors.index.json"
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise CheckpointError(f"corrupt shard index {index}: {e}") from e
        elif any((self.path / n).is_file() for n in SINGLE_FILES):
            weight_map = None
        elif (self.path / "pytorch_model.bin").is_file():
            raise CheckpointError(f"{self.path} has only pytorch_model.bin (a pickle); lingvis loads safetensors "
                                  "only. Convert it with transformers: model.save_pretrained(dir, "
                                  "safe_serialization=True)")
        else:
            raise CheckpointError(f"no model.safetensors (or sharded index) in {self.path}")
        single = next((n for n in SINGLE_FILES if (self.path / n).is_file()), SINGLE_FILES[0])
        shards = sorted(set(weight_map.values())) if weight_map else [single]
        missing = [s for s in shards if not (self.path / s).is_file()]
        if missing:
            raise CheckpointError(f"{index}: shard file(s) missing: {', '.join(missing)}")
        self._where: dict[str, tuple[Path, int, dict]] = {}
        for shard in shards:
            start, header = _safetensors_header(self.path / shard)
            for k, info in header.items():
                self._where[k] = (self.path / shard, start, info)
        if weight_map:
            absent = [k for k, s in weight_map.items() if k not in self._where or self._where[k][0].name != s]
            if absent:
                raise CheckpointError(f"{index} lists tensor {absent[0]!r} in {weight_map[absent[0]]}, which does "
                                      f"not hold it ({len(absent)} such)")

    def _info(self, key: str) -> tuple[Path, int, dict, torch.dtype]:
        if key not in self._where:
            raise KeyError(key)
        path, start, info = self._where[key]
        dtype = _DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise CheckpointError(f"{path}: tensor {key!r} has unsupported dtype {info.get('dtype')!r}")
        return path, start, info, dtype

    @staticmethod
    def _read(path: Path, offset: int, out, key: str) -> None:
        with open(path, "rb") as f:
            f.seek(offset)
            if f.readinto(out) != len(out):
                raise CheckpointError(f"{path} is truncated: tensor {key!r} is incomplete")

    def __getitem__(self, key: str) -> torch.Tensor:
        path, start, info, dtype = self._info(key)
        lo, hi = info["data_offsets"]
        out = torch.empty(info["shape"], dtype=dtype)
        if hi > lo:
            self._read(path, start + lo, memoryview(out.view(-1).view(torch.uint8).numpy()).cast("B"), key)
        return out

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._info(key)[2]["shape"])

    def read_into(self, key: str, dest: torch.Tensor) -> None:
        """Copy tensor `key` into `dest` (same shape): read straight into its memory when the dtypes match
        (no temporary), else through one temporary of the stored dtype. The key is then forgotten."""
        path, start, info, dtype = self._info(key)
        if tuple(info["shape"]) != tuple(dest.shape):
            raise CheckpointError(f"{path}: tensor {key!r} has shape {tuple(info['shape'])}, expected "
                                  f"{tuple(dest.shape)}")
        lo, hi = info["data_offsets"]
        if dtype == dest.dtype and dest.is_contiguous() and dest.device.type == "cpu" and hi > lo:
            self._read(path, start + lo, memoryview(dest.detach().view(-1).view(torch.uint8).numpy()).cast("B"), key)
        elif hi > lo and dest.dim() > 0 and dest.shape[0] > 1:  # convert in slabs of rows: a bounded temporary
            row_bytes = (hi - lo) // dest.shape[0]
            step = max(1, CONVERT_CHUNK // max(row_bytes, 1))
            with torch.no_grad():
                for r in range(0, dest.shape[0], step):
                    part = torch.empty((min(step, dest.shape[0] - r), *dest.shape[1:]), dtype=dtype)
                    self._read(path, start + lo + r * row_bytes, memoryview(part.view(-1).view(torch.uint8).numpy())
                               .cast("B"), key)
                    dest[r:r + part.shape[0]].copy_(part)
        else:
            with torch.no_grad():
                dest.copy_(self[key])
        del self._where[key]

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
        return sum(info["data_offsets"][1] - info["data_offsets"][0] for _, _, info in self._where.values())


def read_hf_weights(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of an HF folder in memory (small models; large ones use `HFWeights` directly)."""
    weights = HFWeights(path)
    return {k: weights[k] for k in weights}


def load_hf(path: Path) -> nn.Module:
    """An HF folder by its `config.json` model_type (diffusers: `_class_name`), or a diffusers pipeline folder
    (`model_index.json`, loader "diffusers_pipeline")."""
    if (path / "model_index.json").is_file():
        if "diffusers_pipeline" not in LOADERS:
            raise CheckpointError(f"{path} is a diffusers pipeline folder, which needs lingvis's diffusers interop")
        return LOADERS["diffusers_pipeline"]({}, None, path).eval()
    config = read_json(path / "config.json", CheckpointError, "config.json", expect=dict)
    model_type = config.get("model_type") or config.get("_class_name")  # diffusers names the class
    if model_type not in LOADERS:
        raise CheckpointError(f"{path / 'config.json'}: unsupported model_type {model_type!r}; "
                              f"lingvis loads {sorted(LOADERS)}")
    return LOADERS[model_type](config, HFWeights(path), path).eval()


def export_hf(model: nn.Module, folder: Path, tokenizer=None) -> tuple[bool, bool]:
    """Write `model` as Hugging Face files into `folder`. Returns (written, tokenizer written): written is False
    when its family/config has no HF twin; an exporter with `takes_tokenizer = True` (a diffusers pipeline)
    places the tokenizer itself where its format wants it."""
    for writer in EXPORTERS.get(getattr(model, "family", ""), []):
        own = getattr(writer, "takes_tokenizer", False)
        if writer(model, folder, tokenizer) if own else writer(model, folder):
            return True, own and tokenizer is not None
    return False, False


def export_problem(model: nn.Module) -> str | None:
    """Why `model` has no HF files (exporters may carry `why_not(model) -> str | None` naming the config field)."""
    for writer in EXPORTERS.get(getattr(model, "family", ""), []):
        reason = getattr(writer, "why_not", lambda m: None)(model)
        if reason:
            return reason
    return None
