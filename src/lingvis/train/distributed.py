"""Data-parallel training under torchrun: process-group setup from the launcher's environment, DDP or
FSDP2 (`fully_shard` per Block) wrapping, gradient-sync control for accumulation, cross-rank reductions,
feature gathering for contrastive losses, and activation checkpointing.

Launch: `torchrun --nproc_per_node N -m lingvis pretrain gpt ...` (see docs/distributed.md). The default
mode `auto` runs DDP under torchrun (FSDP when a full replica would not fit in memory) and nothing in a
single process.
"""
from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..devices import resolve_device
from .gather import all_gather_with_grad as gather_features  # noqa: F401  (contrastive losses across ranks)

MODES = ("auto", "none", "ddp", "fsdp")
# a DDP replica may use at most this share of the memory available to its rank; the rest is left for
# activations, the allocator and the communication buffers
REPLICA_SHARE = 0.5


@dataclass
class DistContext:
    """Where this process sits: `mode` none|ddp|fsdp, its rank among `world_size`, and its device."""

    mode: str = "none"
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.mode != "none"

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def mean(self, value: float) -> float:
        """Average a Python number over ranks (every rank gets the result)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return float(t) / self.world_size

    def any(self, flag: bool) -> bool:
        """True on every rank if `flag` is true on any rank (keeps ranks in step, e.g. time budgets)."""
        if not self.distributed:
            return flag
        t = torch.tensor([int(flag)], device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t)

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def launcher_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the variables torchrun sets; (0, 1, 0) outside torchrun."""
    try:
        return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as e:
        raise ValueError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK must be integers): {e}") from e


def _device(name: str, local_rank: int, distributed: bool) -> torch.device:
    device = resolve_device(name)
    if device.type == "cuda" and distributed and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def replica_bytes(model: nn.Module, lora: bool = False) -> int:
    """Memory a full DDP replica of `model` holds besides activations: weights, and for every trained
    parameter its gradient and two AdamW moments (4x its bytes). With `lora`, the base weights are frozen
    (adapters are small next to them), so only the weights count."""
    per_param = 1 if lora else 4
    return sum(p.numel() * p.element_size() * (per_param if p.requires_grad else 1) for p in model.parameters())


def available_bytes(device: torch.device) -> int | None:
    """Memory one rank may use on `device`: free GPU memory, or on CPU the host's available memory shared
    by the ranks on this machine (torchrun's LOCAL_WORLD_SIZE). None when unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as fh:
                kib = next(int(line.split()[1]) for line in fh if line.startswith("MemAvailable:"))
        except (OSError, StopIteration, ValueError):
            return None
        return kib * 1024 // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    return None


def resolve_mode(mode: str, world_size: int, need_bytes: int | None = None, have_bytes: int | None = None) -> str:
    """The data-parallel mode to run: 'none' in a single process whatever was asked; under torchrun
    (`world_size` > 1) `auto` is DDP, or FSDP when a replica (`need_bytes`) would take more than
    `REPLICA_SHARE` of the memory a rank has (`have_bytes`)."""
    if mode not in MODES:
        raise ValueError(f"distributed must be one of {', '.join(MODES)}, got {mode!r}")
    if world_size <= 1:
        return "none"
    if mode == "none":
        raise ValueError(f"launched with WORLD_SIZE={world_size} (torchrun) but --distributed is 'none'; "
                         "drop it (auto picks DDP or FSDP) or pass --distributed ddp or --distributed fsdp")
    if mode == "auto":
        too_big = need_bytes is not None and have_bytes is not None and need_bytes > REPLICA_SHARE * have_bytes
        return "fsdp" if too_big else "ddp"
    return mode


def setup(mode: str = "auto", device: str = "auto", need_bytes: int | None = None) -> DistContext:
    """Join the process group torchrun prepared (gloo on CPU, nccl on CUDA) and pick this rank's device.
    `mode` goes through `resolve_mode`; `need_bytes` is a model replica's size (`replica_bytes`) for `auto`."""
    rank, world, local = launcher_env()
    if resolve_mode(mode, world) == "none":  # a single process: no process group, whatever was asked
        return DistContext(device=_device(device, 0, False))
    dev = _device(device, local, True)
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:  # WORLD_SIZE set by hand, without torchrun: ranks on this machine
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", "29500")
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    ctx = DistContext("ddp", dist.get_rank(), dist.get_world_size(), local, dev)
    have = available_bytes(dev) if mode == "auto" and need_bytes is not None else None
    chosen = resolve_mode(mode, world, need_bytes, have)
    if mode == "auto":  # ranks measure their own memory: shard when any of them would run short
        chosen = "fsdp" if ctx.any(chosen == "fsdp") else "ddp"
    ctx.mode = chosen
    return ctx


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _broadcast_from_main(model: nn.Module) -> None:
    """Make every rank start from rank 0's weights (FSDP shards each rank's own copy as it is)."""
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)


def wrap(model: nn.Module, ctx: DistContext) -> nn.Module:
    """Return the module to run forward/backward through: DDP wrapper, or the model sharded in place by
    FSDP2 (one `fully_shard` unit per transformer Block, then the root for embeddings and heads)."""
    if ctx.mode == "none":
        return model
    if ctx.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        return DDP(model, device_ids=ids)
    from torch.distributed.fsdp import fully_shard

    from ..nn import transformer_layers

    _broadcast_from_main(model)
    units = transformer_layers(model)
    for block in units:
        fully_shard(block)
    fully_shard(model)
    return model


def grad_sync(wrapped: nn.Module, ctx: DistContext, sync: bool):
    """Context for one micro-batch's backward: gradients are all-reduced only when `sync` (the last
    accumulation step); earlier steps accumulate locally."""
    if ctx.mode == "ddp" and not sync:
        return wrapped.no_sync()
    if ctx.mode == "fsdp":
        wrapped.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()


def clip_grad_norm(params, max_norm: float | None) -> float:
    """Clip the global gradient norm (sharded FSDP gradients included); return the norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(list(params), max_norm or float("inf"))
    if hasattr(norm, "full_tensor"):  # a DTensor under FSDP2
        norm = norm.full_tensor()
    return float(norm)


def _checkpointed_forward(forward, *args, **kwargs):
    if torch.is_grad_enabled():  # training; decoding runs under no_grad/inference_mode
        from torch.utils.checkpoint import checkpoint

        return checkpoint(forward, *args, use_reentrant=False, **kwargs)
    return forward(*args, **kwargs)


def checkpoint_activations(model: nn.Module) -> int:
    """Recompute each Block's activations in backward instead of storing them (less memory, ~1/3 more
    compute). Parameter names are unchanged. Returns the number of blocks affected."""
    from ..nn import transformer_layers

    blocks = transformer_layers(model)
    if not blocks:
        raise ValueError(f"activation checkpointing: {type(model).__name__} has no transformer layers (lingvis.nn.TRANSFORMER_LAYERS)")
    for block in blocks:
        block.forward = functools.partial(_checkpointed_forward, block.forward)
    return len(blocks)


def prepare_model(model: nn.Module, cfg, ctx: DistContext, meta: dict) -> tuple[nn.Module, nn.Module, dict]:
    """Everything between "a built model" and "a model the step loop runs": LoRA adapters (when
    `cfg.lora_rank`), device placement, activation checkpointing, DDP/FSDP. Returns (model, the module to
    run forward through, checkpoint meta). Build the optimizer from `model` after this call."""
    if cfg.lora_rank:
        from ..lora import LoRAConfig, apply_lora

        lcfg = LoRAConfig(rank=cfg.lora_rank, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                          targets=tuple(t for t in cfg.lora_targets.split(",") if t),
                          train=tuple(t for t in cfg.lora_train.split(",") if t))
        apply_lora(model, lcfg)
        meta = {**meta, "lora": lcfg.to_dict()}
    model = model.to(ctx.device)
    if cfg.activation_checkpointing:
        checkpoint_activations(model)
    return model, wrap(model, ctx), meta


def rank_batch(micro_batch: int, ctx: DistContext) -> int:
    """Each rank's share of a micro-batch; the global batch is the same at any world size."""
    if micro_batch % ctx.world_size:
        raise ValueError(f"micro batch {micro_batch} (batch_size / grad_accum) is not divisible by the "
                         f"{ctx.world_size} ranks; choose batch_size = k * grad_accum * {ctx.world_size}")
    return micro_batch // ctx.world_size


class NullLog:
    """The metrics log of ranks other than 0: they compute the same numbers and write nothing."""

    def write(self, row: dict) -> None:
        return None

    def rows(self) -> list[dict]:
        return []


def quiet_other_ranks() -> None:
    """Under torchrun only rank 0 prints results to stdout (every rank still reports errors on stderr)."""
    if launcher_env()[0] > 0:
        import sys

        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives for the whole process)
