"""Training checkpoints: one folder per saved step (weights + JSON state + optimizer + RNG), written
atomically, with `last.json` / `best.json` pointers replaced atomically. A crash mid-write leaves the
previous checkpoint and pointers untouched."""
from __future__ import annotations

import json
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..io import atomic_dir, atomic_write_text, load_state, native_meta, read_safetensors, write_native_files

STATE_FILE = "trainer_state.json"
CHECKPOINTS = "checkpoints"  # <out>/checkpoints/ holds the step folders and the last/best pointers


def resumable(out: str | Path, resume: bool = True) -> bool:
    """Whether a run asked to `resume` has checkpoints in `out` to resume from (a fresh `out` starts anew)."""
    return bool(resume) and (Path(out) / CHECKPOINTS).is_dir()


def rng_state() -> dict:
    py, npy = random.getstate(), np.random.get_state()
    st = {"torch": torch.get_rng_state(), "python": list(py[1]), "python_gauss": py[2],
          "numpy": torch.from_numpy(npy[1].astype(np.int64)), "numpy_rest": [int(npy[2]), int(npy[3]), float(npy[4])]}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate((3, tuple(st["python"]), st["python_gauss"]))
    pos, has_gauss, cached = st["numpy_rest"]
    np.random.set_state(("MT19937", st["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def write_peft_adapter(folder: Path, model: nn.Module, meta: dict, state: dict[str, torch.Tensor]) -> None:
    """A LoRA checkpoint also holds its adapters in the PEFT format (adapter_config.json +
    adapter_model.safetensors) when the family has a Hugging Face twin."""
    if not meta.get("lora"):
        return
    from ..interop.adapters import AdapterError, write_adapter

    try:
        write_adapter(folder, model.family, model.config, meta["lora"], state)
    except AdapterError as e:
        warnings.warn(f"LoRA checkpoint written without a PEFT adapter copy: {e}", stacklevel=3)


class CheckpointManager:
    """Saves under `<out>/checkpoints/step-<step, 7 digits>/` and keeps the newest `keep_last` plus the best."""

    def __init__(self, out_dir: str | Path, keep_last: int = 2):
        self.root = Path(out_dir) / CHECKPOINTS
        self.keep_last = keep_last

    def _pointer(self, name: str) -> dict | None:
        p = self.root / f"{name}.json"
        if not p.is_file():
            return None
        info = json.loads(p.read_text())
        return info if (self.root / info["dir"]).is_dir() else None

    def save(self, step: int, model: nn.Module, optimizer, trainer_state: dict, tokenizer=None,
             is_best: bool = False, extra_meta: dict | None = None) -> Path:
        name = f"step-{step:07d}"
        with atomic_dir(self.root / name) as tmp:
            meta = native_meta(model, extra_meta)
            write_native_files(model, tmp, meta)
            write_peft_adapter(tmp, model, meta, model.state_dict())
            (tmp / STATE_FILE).write_text(json.dumps({**trainer_state, "step": step}, indent=2))
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(rng_state(), tmp / "rng.pt")
            if tokenizer is not None:
                tokenizer.save(tmp)
        self._point(name, step, trainer_state, is_best)
        return self.root / name

    def _point(self, name: str, step: int, trainer_state: dict, is_best: bool) -> None:
        """Point `last.json` (and `best.json`) at a published step folder, then prune old ones."""
        atomic_write_text(self.root / "last.json", json.dumps({"dir": name, "step": step}))
        if is_best:
            atomic_write_text(self.root / "best.json", json.dumps({"dir": name, "step": step,
                                                                   "metric": trainer_state.get("best_metric")}))
        self._prune()

    def _prune(self) -> None:
        steps = sorted(p for p in self.root.glob("step-*") if p.is_dir())
        best = self._pointer("best")
        keep = {p.name for p in steps[-self.keep_last:]} | ({best["dir"]} if best else set())
        for p in steps:
            if p.name not in keep:
                shutil.rmtree(p, ignore_errors=True)
        for p in self.root.glob(".step-*"):  # leftovers of a crashed write
            shutil.rmtree(p, ignore_errors=True)

    def latest(self) -> Path | None:
        info = self._pointer("last")
        return self.root / info["dir"] if info else None

    def restore(self, model: nn.Module, optimizer) -> dict:
        """Load the last checkpoint into `model` and `optimizer`, restore RNG; return the trainer state."""
        ckpt = self.latest()
        if ckpt is None:
            raise FileNotFoundError(f"--resume: no checkpoint found under {self.root}")
        load_state(model, read_safetensors(ckpt / "model.safetensors"), source=str(ckpt))
        optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=True))
        set_rng_state(torch.load(ckpt / "rng.pt", weights_only=True))
        return json.loads((ckpt / STATE_FILE).read_text())
