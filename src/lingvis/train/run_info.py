"""What produced a run: the full command line, the resolved options and library versions, saved as
`<run>/run_info.json` by the trainer (a resumed run keeps the earlier invocations under `previous`)."""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import shlex
import sys
import time
from importlib import metadata
from pathlib import Path

from ..io import atomic_write_text

_invocation: dict = {}  # set by the `lingvis` command: its arguments, and its options after --config
LIBRARIES = ("torch", "numpy", "tokenizers", "safetensors", "transformers", "peft", "tensorboard", "wandb")


def record_invocation(argv: list[str], options: dict) -> None:
    """Remember the `lingvis` command line and its resolved options (defaults and --config file applied)."""
    _invocation.clear()
    _invocation.update(command=shlex.join(["lingvis", *argv]),
                       options={k: v for k, v in options.items() if not callable(v)})


def library_versions() -> dict[str, str]:
    """Python, lingvis and the installed libraries that shape a run's numbers; torch's CUDA/cuDNN builds."""
    import torch

    from .._version import __version__

    versions = {"python": platform.python_version(), "lingvis": __version__}
    for dist in LIBRARIES:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    if torch.version.cuda:
        versions["cuda"] = torch.version.cuda
        versions["cudnn"] = str(torch.backends.cudnn.version())
    return versions


def run_info(cfg=None, **extra) -> dict:
    """The record for this process: command line, options, train config (a dataclass), versions, platform."""
    info = {"command": _invocation.get("command") or shlex.join([sys.executable, *sys.argv]),
            "argv": list(sys.argv), "cwd": os.getcwd(), "options": _invocation.get("options", {}),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "platform": platform.platform(),
            "versions": library_versions()}
    if cfg is not None:
        info["train_config"] = dataclasses.asdict(cfg)
    return {**info, **extra}


def write_run_info(out: str | Path, cfg=None, resumed_at: int | None = None, **extra) -> Path:
    """Write `<out>/run_info.json` atomically; on resume the earlier records move under `previous`."""
    path = Path(out) / "run_info.json"
    previous: list[dict] = []
    if resumed_at is not None and path.is_file():
        try:
            old = json.loads(path.read_text())
            previous = [*old.pop("previous", []), old]
        except (json.JSONDecodeError, AttributeError):
            previous = []
    info = run_info(cfg, **extra, resumed_from_step=resumed_at, previous=previous)
    atomic_write_text(path, json.dumps(info, indent=2, default=str))
    return path
