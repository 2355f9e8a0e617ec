"""Samplers that read and write diffusers' `scheduler_config.json`: DDPM, DDIM, DPM-Solver++ (multistep),
Euler and FlowMatch-Euler. `make_scheduler` builds one by diffusers class name or short alias."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from .base import CONFIG_FILE, Scheduler, VPScheduler
from .ddim import DDIMScheduler
from .ddpm import DDPMScheduler
from .dpm_solver import DPMSolverMultistepScheduler
from .euler import EulerDiscreteScheduler
from .flow_match import FlowMatchEulerDiscreteScheduler

SCHEDULERS: dict[str, type[Scheduler]] = {cls.class_name: cls for cls in (
    DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler)}
ALIASES = {"ddpm": "DDPMScheduler", "ddim": "DDIMScheduler", "dpm++": "DPMSolverMultistepScheduler",
           "dpmsolver++": "DPMSolverMultistepScheduler", "dpm-solver++": "DPMSolverMultistepScheduler",
           "euler": "EulerDiscreteScheduler", "flow-euler": "FlowMatchEulerDiscreteScheduler",
           "flow": "FlowMatchEulerDiscreteScheduler"}
# diffusers schedulers lingvis has no twin for: sampled with DDIM over the same noise schedule
FALLBACK = "DDIMScheduler"
SWAPPABLE = {"PNDMScheduler", "LMSDiscreteScheduler", "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler",
             "UniPCMultistepScheduler", "DEISMultistepScheduler", "DPMSolverSinglestepScheduler",
             "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler"}


def scheduler_class(name: str) -> type[Scheduler]:
    key = ALIASES.get(name.lower(), name) if isinstance(name, str) else name
    if key not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose from {sorted(ALIASES)} or {sorted(SCHEDULERS)}")
    return SCHEDULERS[key]


def make_scheduler(config: dict, name: str | None = None, source: str = "scheduler config") -> Scheduler:
    """A scheduler from a diffusers config dict. `name` (class or alias) overrides `_class_name`, keeping
    the config's noise schedule (the way diffusers swaps schedulers with `from_config`)."""
    cls_name = name or config.get("_class_name")
    if cls_name is None:
        raise ValueError(f"{source}: no `_class_name`; pass a scheduler name")
    if name is None and cls_name in SWAPPABLE:
        warnings.warn(f"{source}: {cls_name} has no lingvis twin; sampling with {FALLBACK} over the same noise "
                      "schedule", stacklevel=2)
        cls_name = FALLBACK
    if name is None and cls_name not in SCHEDULERS:
        raise ValueError(f"{source}: unsupported scheduler class {cls_name!r}; lingvis has {sorted(SCHEDULERS)}")
    cls = scheduler_class(cls_name)
    return cls.from_config(_translate(config, cls, source), source)


def _is_flow(config: dict) -> bool:
    return config.get("_class_name") == FlowMatchEulerDiscreteScheduler.class_name or bool(
        config.get("use_flow_sigmas"))


def _translate(config: dict, cls: type[Scheduler], source: str) -> dict:
    """Carry a flow-matching config to DPM-Solver++ (flow sigmas) and refuse flow <-> noise-prediction swaps."""
    if config.get("_class_name") in (None, cls.class_name):
        return config
    flow_src = _is_flow(config)
    if cls is DPMSolverMultistepScheduler and flow_src:
        shift = config.get("flow_shift", config.get("shift", 1.0))
        return {"num_train_timesteps": config.get("num_train_timesteps", 1000), "use_flow_sigmas": True,
                "prediction_type": "flow_prediction", "flow_shift": shift}
    if flow_src != (cls is FlowMatchEulerDiscreteScheduler):
        kind = "flow-matching" if flow_src else "noise-prediction"
        raise ValueError(f"{source}: a {kind} model ({config.get('_class_name')}) cannot be sampled with "
                         f"{cls.class_name}")
    return config


def load_scheduler(folder: str | Path, name: str | None = None) -> Scheduler:
    """Read `scheduler_config.json` from a folder (or the file itself)."""
    path = Path(folder)
    path = path / CONFIG_FILE if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_FILE} at {path}")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"corrupt {path}: {e}") from e
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return make_scheduler(config, name, source=str(path))


__all__ = ["SCHEDULERS", "ALIASES", "Scheduler", "VPScheduler", "DDPMScheduler", "DDIMScheduler",
           "DPMSolverMultistepScheduler", "EulerDiscreteScheduler", "FlowMatchEulerDiscreteScheduler",
           "scheduler_class", "make_scheduler", "load_scheduler", "CONFIG_FILE"]
