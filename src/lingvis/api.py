"""The top-level contract: `load`, `save`, `load_tokenizer`."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import nn

from . import interop
from .io import META_FILE, CheckpointError, atomic_dir, load_native, native_meta, write_native_files
from .lora import merge_lora


def resolve_checkpoint(path: str | Path) -> Path:
    """A model folder (lingvis.json or HF config.json), or a run folder whose best/last checkpoint is used."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if p.is_file():
        raise CheckpointError(f"{p} is a file; pass the folder that holds config.json or {META_FILE}")
    if (p / META_FILE).is_file() or (p / "config.json").is_file() or (p / "model_index.json").is_file():
        return p
    for pointer in ("best", "last"):
        ptr = p / "checkpoints" / f"{pointer}.json"
        if ptr.is_file():
            try:
                target = p / "checkpoints" / json.loads(ptr.read_text())["dir"]
            except (json.JSONDecodeError, KeyError) as e:
                raise CheckpointError(f"corrupt checkpoint pointer {ptr}: {e}") from e
            if target.is_dir():
                return target
    raise CheckpointError(f"no model in {p}: expected {META_FILE} or config.json, or a run folder with "
                          "checkpoints/best.json or checkpoints/last.json")


def load(path: str | Path, device: str | torch.device | None = None) -> nn.Module:
    """Load a lingvis or Hugging Face checkpoint folder (or a run folder) as an eval-mode module. A PEFT
    LoRA adapter folder loads its `base_model_name_or_path` with the adapter merged in; a llama.cpp `.gguf`
    file (GPT-2 / Llama family) loads dequantised to fp32."""
    from .interop import adapters

    if Path(path).is_file() and Path(path).suffix == ".gguf":
        from .interop.gguf_load import load_gguf

        model = load_gguf(path)
        return model.to(device) if device is not None else model
    if (Path(path) / adapters.ADAPTER_CONFIG).is_file() and not any(
            (Path(path) / f).is_file() for f in (META_FILE, "config.json")):
        model = adapters.apply_adapter(load(adapters.base_model_path(path)), path)
        return model.to(device) if device is not None else model
    p = resolve_checkpoint(path)
    model = load_native(p) if (p / META_FILE).is_file() else interop.load_hf(p)
    return model.to(device) if device is not None else model


def load_as(path: str | Path, families: str | tuple[str, ...], what: str | None = None,
            device: str | torch.device | None = None) -> nn.Module:
    """`load(path)`, checking the model belongs to one of `families` (ValueError naming the folder, the family
    it holds and `what` was expected otherwise)."""
    model = load(path, device)
    allowed = (families,) if isinstance(families, str) else families
    fam = getattr(model, "family", None)
    if fam not in allowed:
        raise ValueError(f"{path} holds a {fam or type(model).__name__} model, not {what or ' or '.join(allowed)}")
    return model


def load_tokenizer(path: str | Path):
    from .tokenizers import Tokenizer

    from .interop import adapters

    p = Path(path)
    if p.is_file() and p.suffix == ".gguf":
        from .interop.gguf_load import load_gguf_tokenizer

        return load_gguf_tokenizer(p)
    if p.is_dir() and not (p / "tokenizer.json").is_file() and not (p / "vocab.json").is_file() \
            and not (p / "vocab.txt").is_file():
        if (p / adapters.ADAPTER_CONFIG).is_file() and not (p / META_FILE).is_file():
            return load_tokenizer(adapters.base_model_path(p))  # an adapter folder: the base model's
        p = resolve_checkpoint(p)
    if (p / "model_index.json").is_file():  # a diffusers pipeline keeps it in tokenizer/
        return interop.diffusers.load_pipeline_tokenizer(p)
    return Tokenizer.load(p)


def save(model: nn.Module, path: str | Path, tokenizer=None, format: str = "auto") -> Path:
    """Write a model folder. `format`: 'hf' (Hugging Face files; error if the family has none),
    'lingvis' (native), or 'auto' (HF where the family and config have a counterpart)."""
    if format not in ("auto", "hf", "lingvis"):
        raise ValueError(f"format must be auto, hf or lingvis, got {format!r}")
    _check_destination(Path(path))
    with atomic_dir(path) as tmp:
        written = False
        tokenizer_written = False
        if format in ("auto", "hf"):
            written, tokenizer_written = interop.export_hf(model, tmp, tokenizer)
        if format == "hf" and not written:
            why = interop.export_problem(model)
            raise ValueError(f"{type(model).__name__} with this config has no Hugging Face counterpart"
                             f"{f' ({why})' if why else ''}; use format='lingvis'")
        if not written:
            write_native_files(model, tmp, native_meta(model))
        if tokenizer is not None and not tokenizer_written:
            tokenizer.save(tmp)
            _stamp_special_ids(tmp, tokenizer)
    return Path(path)


MODEL_FILES = (META_FILE, "config.json", "model.safetensors", "model.safetensors.index.json", "tokenizer.json",
               "model_index.json")


def _check_destination(path: Path) -> None:
    """`save` replaces the whole folder: refuse a file, or a non-empty folder that holds no model files
    (a typo like `save(model, ".")` must not wipe a project)."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"cannot save to {path}: it exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not any((path / f).exists() for f in MODEL_FILES):
        raise ValueError(f"refusing to replace {path}: the folder is not empty and holds no model files; "
                         "save into a new or empty folder")


def _stamp_special_ids(folder: Path, tokenizer) -> None:
    cfg_path = folder / "config.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text())
        for key, value in (("eos_token_id", tokenizer.eos_id), ("bos_token_id", tokenizer.bos_id),
                           ("pad_token_id", tokenizer.pad_id)):
            if value is not None:
                cfg[key] = value
        cfg_path.write_text(json.dumps(cfg, indent=2))


def export_merged(model: nn.Module, path: str | Path, tokenizer=None, format: str = "auto") -> Path:
    """Write a merged copy of a LoRA adapter model (the model itself is left as it is)."""
    return save(merge_lora(copy.deepcopy(model)).eval(), path, tokenizer=tokenizer, format=format)


def export_adapter(checkpoint: str | Path, path: str | Path, base_out: str | Path | None = None,
                   tokenizer=None) -> Path:
    """Write the adapters of a LoRA checkpoint (or run) folder in the PEFT format (adapter_config.json +
    adapter_model.safetensors, plus the tokenizer if given). With `base_out`, also write the base model
    (the frozen weights without adapters) there as Hugging Face files and name it in the adapter config,
    so `peft.PeftModel.from_pretrained(AutoModel...(base_out), path)` and `lingvis.load(path)` both work."""
    from .interop.adapters import write_adapter
    from .io import WEIGHTS_FILE, load_state, read_safetensors
    from .models import registry

    ckpt = resolve_checkpoint(checkpoint)
    meta = json.loads((ckpt / META_FILE).read_text()) if (ckpt / META_FILE).is_file() else {}
    if not meta.get("lora"):
        raise CheckpointError(f"{ckpt} holds no LoRA adapters ({META_FILE} has no \"lora\" entry); train with "
                              "--lora-rank to get some")
    config = registry.make_config(meta["family"], meta.get("config", {}))
    state = read_safetensors(ckpt / WEIGHTS_FILE)
    base = None
    if base_out is not None:
        model = registry.family(meta["family"]).model_cls(config)
        load_state(model, {k: v for k, v in state.items() if ".lora_" not in k}, source=str(ckpt / WEIGHTS_FILE))
        save(model.eval(), base_out, tokenizer=tokenizer, format="hf")
        base = str(Path(base_out).resolve())
    with atomic_dir(path) as tmp:
        write_adapter(tmp, meta["family"], config, meta["lora"], state, base_model=base)
        if tokenizer is not None:
            tokenizer.save(tmp)
    return Path(path)
