"""Checkpoints of a distributed run, resumable on any number of ranks.

A step folder holds what a single-process checkpoint holds (`lingvis.json` + full `model.safetensors`,
`trainer_state.json`, tokenizer) so `lingvis.load` opens it, plus `dcp/`: model and optimizer state
written by every rank with `torch.distributed.checkpoint` (DCP). DCP stores tensors by parameter name
with their global shapes, so a run saved by N ranks (DDP or FSDP2) loads on M ranks, or in one plain
process. `rng-rank<r>.pt` keeps each rank's random state. The folder appears by one rename when every
rank has finished writing; on several machines `--out` must be a shared filesystem.
"""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import save_file
from torch import nn
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_state_dict,
                                                     set_model_state_dict, set_optimizer_state_dict,
                                                     set_state_dict)

from ..io import META_FILE, WEIGHTS_FILE, native_meta, publish_dir, read_safetensors
from .checkpoint import STATE_FILE, CheckpointManager, rng_state, set_rng_state, write_peft_adapter
from .distributed import DistContext

DCP_DIR = "dcp"
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def _unique_names(model: nn.Module) -> set[str]:
    """Names to write: tied parameters (e.g. wte/lm_head) keep only their first name."""
    first: dict[int, str] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        first.setdefault(id(p), name)
    tied = {n for n, p in model.named_parameters(remove_duplicate=False) if first[id(p)] != n}
    return set(model.state_dict()) - tied


def _fqn_optimizer_state(model: nn.Module, optimizer, plain: dict) -> dict:
    """Turn a single-process optimizer state (params numbered in group order) into the name-keyed form
    `set_optimizer_state_dict` expects. Numbering follows the optimizer's own param_groups."""
    names = {id(p): n for n, p in model.named_parameters()}
    order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    if len(order) != sum(len(g["params"]) for g in plain["param_groups"]):
        raise ValueError(f"optimizer checkpoint has {sum(len(g['params']) for g in plain['param_groups'])} "
                         f"parameters but this model trains {len(order)}")
    groups = [{**g, "params": [order[i] for i in g["params"]]} for g in plain["param_groups"]]
    return {"state": {order[int(i)]: s for i, s in plain["state"].items()}, "param_groups": groups}


class DistCheckpointManager(CheckpointManager):
    """`CheckpointManager` for any run: plain single-process checkpoints when not distributed, DCP ones
    when it is. `restore` reads either kind at any world size."""

    def __init__(self, out_dir: str | Path, keep_last: int = 2, ctx: DistContext | None = None):
        super().__init__(out_dir, keep_last)
        self.ctx = ctx or DistContext()

    # ---- save ------------------------------------------------------------------------------------
    def save(self, step: int, model: nn.Module, optimizer, trainer_state: dict, tokenizer=None,
             is_best: bool = False, extra_meta: dict | None = None) -> Path:
        if not self.ctx.distributed:
            return super().save(step, model, optimizer, trainer_state, tokenizer, is_best, extra_meta)
        ctx, name = self.ctx, f"step-{step:07d}"
        final, tmp = self.root / name, self.root / f".{name}.tmp"
        if ctx.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        ctx.barrier()
        model_sd, optim_sd = get_state_dict(model, optimizer)  # this rank's shards, keyed by name
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp / DCP_DIR))
        full = get_model_state_dict(model, options=_FULL)  # collective; filled on rank 0 only
        torch.save(rng_state(), tmp / f"rng-rank{ctx.rank}.pt")
        ctx.barrier()
        if ctx.is_main:
            self._write_main_files(tmp, step, model, full, trainer_state, tokenizer, extra_meta)
            self._publish(tmp, final, name, step, trainer_state, is_best)
        ctx.barrier()
        return final

    def _write_main_files(self, tmp: Path, step: int, model: nn.Module, full: dict, trainer_state: dict,
                          tokenizer, extra_meta: dict | None) -> None:
        keep = _unique_names(model)
        weights = {k: v.detach().contiguous().cpu() for k, v in full.items() if k in keep}
        save_file(weights, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        meta = native_meta(model, extra_meta)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        write_peft_adapter(tmp, model, meta, weights)
        (tmp / STATE_FILE).write_text(json.dumps({**trainer_state, "step": step, "world_size":
                                                  self.ctx.world_size, "distributed": self.ctx.mode}, indent=2))
        if tokenizer is not None:
            tokenizer.save(tmp)

    def _publish(self, tmp: Path, final: Path, name: str, step: int, trainer_state: dict, is_best: bool) -> None:
        publish_dir(tmp, final)
        self._point(name, step, trainer_state, is_best)

    # ---- restore ---------------------------------------------------------------------------------
    def restore(self, model: nn.Module, optimizer) -> dict:
        ckpt = self.latest()
        if ckpt is None:
            raise FileNotFoundError(f"--resume: no checkpoint found under {self.root}")
        if (ckpt / DCP_DIR).is_dir():
            self._load_dcp(ckpt, model, optimizer)
        elif not self.ctx.distributed:
            return super().restore(model, optimizer)
        else:
            self._load_plain_sharded(ckpt, model, optimizer)
        # this rank's random state; at a new world size, extra ranks take rank 0's
        for name in (f"rng-rank{self.ctx.rank}.pt", "rng-rank0.pt", "rng.pt"):
            if (ckpt / name).is_file():
                set_rng_state(torch.load(ckpt / name, weights_only=True))
                break
        return json.loads((ckpt / STATE_FILE).read_text())

    @staticmethod
    def _load_dcp(ckpt: Path, model: nn.Module, optimizer) -> None:
        """Reshard a DCP checkpoint onto this process's layout (any world size, or no process group)."""
        model_sd, optim_sd = get_state_dict(model, optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        single = not torch.distributed.is_initialized()
        try:
            with warnings.catch_warnings():  # loading into one plain process is intended, not a mistake
                warnings.filterwarnings("ignore", message=".*assuming the intent is to load in a single process")
                dcp.load(state, checkpoint_id=str(ckpt / DCP_DIR), no_dist=single)
        except Exception as e:  # DCP raises CheckpointException/RuntimeError with per-rank details
            raise ValueError(f"cannot resume from {ckpt / DCP_DIR}: {e}") from e
        set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])

    @staticmethod
    def _load_plain_sharded(ckpt: Path, model: nn.Module, optimizer) -> None:
        """A single-process checkpoint resumed by a DDP/FSDP run: every rank reads the full files."""
        full = read_safetensors(ckpt / WEIGHTS_FILE)
        options = StateDictOptions(full_state_dict=True, strict=False)
        set_model_state_dict(model, full, options=options)
        plain = torch.load(ckpt / "optimizer.pt", weights_only=True)
        set_optimizer_state_dict(model, optimizer, _fqn_optimizer_state(model, optimizer, plain),
                                 options=StateDictOptions(full_state_dict=True))
