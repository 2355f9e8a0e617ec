"""Explicit weight-name maps between lingvis modules and diffusers models: regex renames of the module path
plus fused tensors (q/k/v concatenated, GEGLU halves swapped)."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..io import CheckpointError


def _swap_halves(t: torch.Tensor) -> torch.Tensor:
    """diffusers' GEGLU is (value, gate); the shared MLP is (gate, value)."""
    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


@dataclass
class NameMap:
    """`rules`: (lingvis regex, diffusers replacement) applied in order to a lingvis key (or, for a fused
    tensor, to its path prefix). `fused`: lingvis key suffix -> (diffusers suffixes, 'cat' | 'swap')."""

    rules: list[tuple[str, str]]
    fused: dict[str, tuple[list[str], str]] = field(default_factory=dict)

    def rename(self, key: str) -> str:
        for pattern, repl in self.rules:
            key = re.sub(pattern, repl, key)
        return key

    def sources(self, key: str) -> tuple[list[str], str]:
        """The diffusers key(s) that make the lingvis tensor `key`, and how they combine."""
        for suffix, (targets, how) in self.fused.items():
            if key.endswith(suffix):
                prefix = self.rename(key[: -len(suffix)])
                return [prefix + t for t in targets], how
        return [self.rename(key)], "copy"

    def from_diffusers(self, state: dict[str, torch.Tensor], own_keys, source: str) -> dict[str, torch.Tensor]:
        """Build the lingvis state for `own_keys` from a diffusers state dict; names any missing or leftover
        weight."""
        state, out = dict(state), {}
        for key in own_keys:
            names, how = self.sources(key)
            missing = [n for n in names if n not in state]
            if missing:
                raise CheckpointError(f"{source}: weight {missing[0]!r} is missing (needed for {key!r})")
            parts = [state.pop(n) for n in names]
            out[key] = _combine(parts, how)
        if state:
            raise CheckpointError(f"{source}: unexpected weight(s) {sorted(state)[:5]}")
        return out

    def to_diffusers(self, own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for key, t in own.items():
            names, how = self.sources(key)
            for n, part in zip(names, _split(t, len(names), how)):
                out[n] = part.contiguous()
        return out


def _combine(parts: list[torch.Tensor], how: str) -> torch.Tensor:
    if how == "swap":
        return _swap_halves(parts[0])
    return torch.cat(parts, dim=0) if len(parts) > 1 else parts[0]


def _split(t: torch.Tensor, n: int, how: str) -> list[torch.Tensor]:
    if how == "swap":
        return [_swap_halves(t)]
    return list(t.chunk(n, dim=0)) if n > 1 else [t]


def rename_keys(state: dict[str, torch.Tensor], fix: Callable[[str], str]) -> dict[str, torch.Tensor]:
    return {fix(k): v for k, v in state.items()}
