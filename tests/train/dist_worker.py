"""Shared setup for test_distributed.py; run under torchrun it trains the same tiny GPT with DDP and
FSDP2 on 2 gloo ranks (argv: <out folder>)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import lingvis
from lingvis.data.packing import PackedLMDataset
from lingvis.tasks.lm import CausalLMTask
from lingvis.train.config import TrainConfig
from lingvis.train.trainer import Trainer

STEPS = 4


def datasets():
    """A learnable stream (token t+1 = token t + 5 mod 32, with 10% noise): the loss moves every step."""
    g = torch.Generator().manual_seed(0)

    def stream(n: int) -> torch.Tensor:
        ids = (torch.arange(n) * 5 + torch.randint(0, 32, (1,), generator=g)) % 32
        noise = torch.rand(n, generator=g) < 0.1
        return torch.where(noise, torch.randint(0, 32, (n,), generator=g), ids)

    return PackedLMDataset(stream(16 * 64 + 1), 16), PackedLMDataset(stream(16 * 8 + 1), 16)


def train(out: Path, mode: str, resume: bool = False, max_steps: int = STEPS, setup=None,
          activation_checkpointing: bool = False) -> dict:
    """4 steps of gpt-nano, global batch 8 in 2 accumulation steps, checkpoints at steps 2 and 4."""
    torch.manual_seed(0)
    model = lingvis.build("gpt-nano", vocab_size=32, block_size=16)
    cfg = TrainConfig(max_steps=max_steps, batch_size=8, grad_accum=2, lr=1e-2, warmup_steps=2, eval_every=2,
                      eval_batches=1, log_every=1, keep_last=2, seed=0, device="cpu", progress=False,
                      distributed=mode, activation_checkpointing=activation_checkpointing)
    train_set, val_set = datasets()
    trainer = Trainer(model, CausalLMTask(), train_set, val_set, cfg, out)
    if setup is not None:
        setup(trainer)
    return trainer.fit(resume=resume)


def count_syncs(out: Path):
    """A DDP comm hook that records, for every gradient all-reduce, how many training micro-batches had
    run; with accumulation of 2 and no_sync on the first, every count is even."""
    import torch.distributed as dist

    seen: list[int] = []
    micro = [0]

    def hook(trainer):
        def pre(module, args):
            micro[0] += module.training

        def comm(state, bucket):
            seen.append(micro[0])
            fut = dist.all_reduce(bucket.buffer().div_(dist.get_world_size()), async_op=True).get_future()
            return fut.then(lambda f: f.value()[0])

        trainer.model.register_forward_pre_hook(pre)
        trainer.wrapped.register_comm_hook(None, comm)

    def write():
        if dist.get_rank() == 0:
            (out / "ddp-syncs.json").write_text(json.dumps(seen))

    return hook, write


def train_log(out: Path) -> dict[int, tuple[float, float]]:
    """step -> (train loss, gradient norm) from the run's metrics.jsonl."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: (r["loss"], r["grad_norm"]) for r in rows if r["split"] == "train"}


def rewind(out: Path, step: int) -> None:
    """Make `step` the last checkpoint, as if the run had stopped right after saving it."""
    root = out / "checkpoints"
    name = f"step-{step:07d}"
    for d in root.glob("step-*"):
        if d.name > name:
            import shutil

            shutil.rmtree(d)
    (root / "last.json").write_text(json.dumps({"dir": name, "step": step}))
    (root / "best.json").write_text(json.dumps({"dir": name, "step": step, "metric": None}))


def gather_check(out: Path) -> None:
    from lingvis.train import distributed

    rank = torch.distributed.get_rank()
    x = torch.full((2, 3), float(rank + 1), requires_grad=True)  # (B, D) features of this rank
    g = distributed.gather_features(x)  # (2B, D)
    weights = torch.arange(12.0).view(4, 3)
    (g * weights).sum().backward()
    (out / f"gather-rank{rank}.json").write_text(json.dumps(
        {"gathered": g.detach().tolist(), "grad": x.grad.tolist()}))


def main(out: Path) -> None:
    hook, write = count_syncs(out)
    train(out / "ddp", "ddp", setup=hook)
    write()
    train(out / "fsdp", "fsdp")
    if (out / "plain_resume").is_dir():  # a single-process checkpoint continued by 2 FSDP ranks
        train(out / "plain_resume", "fsdp", resume=True)
    gather_check(out)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
