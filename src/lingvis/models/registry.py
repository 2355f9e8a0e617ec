"""Model families and named presets. Families register themselves; presets pin their sizes."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass
class Family:
    name: str
    config_cls: type
    model_cls: type
    description: str = ""


FAMILIES: dict[str, Family] = {}
PRESETS: dict[str, tuple[str, dict[str, Any], str]] = {}  # name -> (family, config fields, description)


def register_family(name: str, config_cls: type, model_cls: type, description: str = "") -> None:
    FAMILIES[name] = Family(name, config_cls, model_cls, description)
    model_cls.family = name


def register_preset(name: str, family: str, description: str = "", **fields: Any) -> None:
    PRESETS[name] = (family, fields, description)


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def make_config(family_name: str, fields: dict[str, Any]):
    """Build a family's config dataclass from a dict, rejecting unknown fields by name."""
    cls = family(family_name).config_cls
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown {family_name} config field(s) {unknown}; known: {sorted(known)}")
    return cls(**fields)


def preset_config(name: str, **overrides: Any):
    """Config of a named preset, with overrides applied. Returns (family name, config)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    fam, fields, _ = PRESETS[name]
    return fam, make_config(fam, {**fields, **overrides})


def preset_of(name: str, families: str | tuple[str, ...], what: str | None = None, **overrides: Any):
    """Config of preset `name`, which must belong to one of `families` (ValueError naming the preset, its
    family and `what` was expected otherwise). Returns (family name, config)."""
    fam, cfg = preset_config(name, **overrides)
    allowed = (families,) if isinstance(families, str) else families
    if fam not in allowed:
        raise ValueError(f"preset {name!r} is a {fam} model, not {what or ' or '.join(allowed)}")
    return fam, cfg


def build(name: str, **overrides: Any) -> nn.Module:
    """A randomly initialised model from a preset name (or a family name with its default config)."""
    if name in PRESETS:
        fam, cfg = preset_config(name, **overrides)
    else:
        fam, cfg = name, make_config(name, overrides)
    return family(fam).model_cls(cfg)


def list_presets(family_name: str | None = None) -> list[str]:
    return sorted(n for n, (f, _, _) in PRESETS.items() if family_name in (None, f))
