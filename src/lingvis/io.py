"""lingvis checkpoint files: `lingvis.json` (family + config) beside `model.safetensors`; atomic writes;
strict, named errors when weights don't fit."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .models import registry

META_FILE = "lingvis.json"
WEIGHTS_FILE = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or does not fit the model."""


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Yield a temporary sibling folder; on success it replaces `path` (see `publish_dir`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        publish_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish_dir(tmp: Path, path: Path) -> None:
    """Make the finished folder `tmp` appear as `path` in one rename: its files are synced first, and an old
    `path` is moved aside before and removed after, so a crash leaves either the old or the new folder."""
    for f in tmp.rglob("*"):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a small text file atomically (temp file + fsync + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"corrupt or unreadable safetensors file {path}: {e}") from e


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint",
               allow_missing: tuple[str, ...] = ()) -> None:
    """Copy `state` into `model`, naming any missing/unexpected key or shape mismatch."""
    own = model.state_dict()
    errors = []
    for k, v in state.items():
        if k not in own:
            errors.append(f"unexpected key {k!r}")
        elif own[k].shape != v.shape:
            errors.append(f"key {k!r}: checkpoint shape {tuple(v.shape)} != model shape {tuple(own[k].shape)}")
    missing = [k for k in own if k not in state and not any(k.endswith(a) for a in allow_missing)]
    missing = [k for k in missing if not _is_tied_alias(model, k, state)]
    errors += [f"missing key {k!r}" for k in missing]
    if errors:
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + "; ".join(errors[:8])
                              + (f" (+{len(errors) - 8} more)" if len(errors) > 8 else ""))
    model.load_state_dict(state, strict=False)


def _is_tied_alias(model: nn.Module, key: str, state: dict) -> bool:
    """True when `key` names a parameter shared with another key that `state` has."""
    params = dict(model.named_parameters(remove_duplicate=False))
    p = params.get(key)
    return p is not None and any(q is p and k != key and k in state for k, q in params.items())


def config_dict(model: nn.Module) -> dict:
    return dataclasses.asdict(model.config)


def native_meta(model: nn.Module, extra: dict | None = None) -> dict:
    """The `lingvis.json` of a native checkpoint: format, version, family and config (+ extras)."""
    return {"format": "lingvis", "version": 1, "family": model.family, "config": config_dict(model), **(extra or {})}


def save_native(model: nn.Module, path: str | Path, extra: dict | None = None) -> Path:
    """Write `lingvis.json` + `model.safetensors` into `path` (atomically)."""
    with atomic_dir(path) as tmp:
        write_native_files(model, tmp, native_meta(model, extra))
    return Path(path)


def write_native_files(model: nn.Module, folder: Path, meta: dict) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    seen: dict[int, str] = {}
    for k in list(state):  # safetensors refuses shared storage: keep one copy of tied tensors
        ptr = state[k].data_ptr()
        if ptr in seen:
            del state[k]
        else:
            seen[ptr] = k
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / META_FILE).write_text(json.dumps(meta, indent=2))


def load_native(path: str | Path) -> nn.Module:
    path = Path(path)
    try:
        meta = json.loads((path / META_FILE).read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"corrupt {path / META_FILE}: {e}") from e
    if not isinstance(meta, dict):
        raise CheckpointError(f"corrupt {path / META_FILE}: expected a JSON object, got {type(meta).__name__}")
    fam = meta.get("family")
    if fam not in registry.FAMILIES:
        raise CheckpointError(f"{path / META_FILE}: unknown model family {fam!r}; known: {sorted(registry.FAMILIES)}")
    try:
        cfg = registry.make_config(fam, meta.get("config", {}))
        model = registry.family(fam).model_cls(cfg)
    except (TypeError, ValueError) as e:  # unknown field, wrong value type, impossible sizes
        raise CheckpointError(f"{path / META_FILE}: {e}") from e
    if meta.get("lora"):  # a LoRA training checkpoint: base weights + adapters, returned merged
        from .lora import LoRAConfig, apply_lora, merge_lora

        apply_lora(model, LoRAConfig(**meta["lora"]))
        load_state(model, read_safetensors(path / WEIGHTS_FILE), source=str(path / WEIGHTS_FILE))
        return merge_lora(model).eval()
    load_state(model, read_safetensors(path / WEIGHTS_FILE), source=str(path / WEIGHTS_FILE))
    return model.eval()
