"""The adapter registry: each model kind registers how to recognise its models."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from ...models.causal_lm import CausalLM
from ..config import ServeConfig
from .base import Adapter

_ADAPTERS: list[tuple[str, Callable[[nn.Module], bool], type[Adapter]]] = []


def register_adapter(kind: str, matches: Callable[[nn.Module], bool]):
    """Class decorator: serve models for which `matches(model)` is true with this adapter."""
    def wrap(cls: type[Adapter]) -> type[Adapter]:
        if any(k == kind for k, _, _ in _ADAPTERS):
            raise ValueError(f"adapter kind {kind!r} is already registered")
        cls.kind = kind
        _ADAPTERS.append((kind, matches, cls))
        return cls
    return wrap


def adapter_kinds() -> list[str]:
    return [k for k, _, _ in _ADAPTERS]


def adapter_class(model: nn.Module, source: str = "") -> type[Adapter]:
    for _, matches, cls in _ADAPTERS:
        if matches(model):
            return cls
    family = getattr(model, "family", type(model).__name__)
    raise ValueError(f"{source or 'model'}: no server adapter for a {family!r} model "
                     f"({type(model).__name__}); served kinds: {', '.join(adapter_kinds())}")


def _tokenizer_or_none(path: Path):
    from ... import api

    try:
        return api.load_tokenizer(path)
    except (FileNotFoundError, ValueError, OSError):
        return None


def open_model(name: str, path: str | Path, config: ServeConfig) -> Adapter:
    """Load the checkpoint at `path` (model, run or HF folder) and wrap it in its adapter."""
    from ... import api

    path = Path(path)
    model = api.load(path, device=config.resolved_device()).eval()
    if config.int8 and isinstance(model, CausalLM):
        from ...quant import quantize_int8_mode

        model = quantize_int8_mode(model, config.int8)
    cls = adapter_class(model, str(path))
    return cls(name, model, _tokenizer_or_none(path), path, config)
