"""Device names for every command: `auto` picks CUDA, then Apple's MPS, then the CPU."""
from __future__ import annotations

import torch

AUTO = "auto"


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str | torch.device | None = AUTO) -> torch.device:
    """`auto` (or None) -> cuda if available, else mps, else cpu; any other name is checked: a CUDA or MPS
    device that this machine lacks is an error naming what is available, not a failure deep in a model."""
    if isinstance(name, torch.device):
        name = str(name)
    name = (name or AUTO).strip().lower()
    if name == AUTO:
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r}: CUDA is not available on this machine (use auto or cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not mps_available():
        raise ValueError(f"device {name!r}: MPS is not available on this machine (use auto or cpu)")
    return device
