"""ONE trainer for every task: the task supplies batching, loss and metrics."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..progress import progress
from ..devices import resolve_device
from . import distributed
from .callbacks import Callback, CallbackList, trackers
from .checkpoint import CheckpointManager
from .dist_checkpoint import DistCheckpointManager
from .config import TrainConfig
from .logging import MetricsLog, plot_losses
from .optim import lr_at, make_optimizer
from .run_info import write_run_info
from .sampler import ResumableBatchSampler
from .task import Task, move_to


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def pick_device(name: str = "auto") -> torch.device:
    """`auto`: CUDA when available, else Apple's MPS when available, else the CPU (lingvis.devices)."""
    return resolve_device(name)


class Trainer:
    """`Trainer(model, task, train_set, val_set, cfg, out_dir).fit()` trains, evaluates every
    `eval_every` steps, keeps best/last checkpoints and a metrics log, and resumes exactly. `callbacks`
    (lingvis.train.callbacks.Callback) hear about logs, evaluations, checkpoints and the end; the
    trackers named in `cfg.log_to` are added on rank 0."""

    def __init__(self, model: nn.Module, task: Task, train_set: Dataset, val_set: Dataset | None,
                 cfg: TrainConfig, out_dir: str | Path, tokenizer=None, meta: dict | None = None,
                 callbacks: Sequence[Callback] = ()):
        self.dist = distributed.setup(cfg.distributed, cfg.device,
                                      need_bytes=distributed.replica_bytes(model, lora=cfg.lora_rank > 0))
        cfg = dataclasses.replace(cfg, distributed=self.dist.mode)  # what runs: auto resolved, none alone
        self.task, self.train_set, self.val_set, self.cfg = task, train_set, val_set, cfg
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.tokenizer, self.meta = tokenizer, meta or {}
        self.callbacks = CallbackList([*callbacks, *(trackers(cfg.log_to, self.out) if self.dist.is_main else [])])
        self.device = self.dist.device
        self.model, self.wrapped, self.meta = distributed.prepare_model(model, cfg, self.dist, self.meta)
        self.optimizer = make_optimizer(self.model, cfg, self.device)
        self.ckpt: CheckpointManager = DistCheckpointManager(self.out, cfg.keep_last, self.dist)
        self.step, self.best = 0, None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")
        self.forward_model = torch.compile(self.wrapped) if cfg.compile else self.wrapped

    # ---- setup -------------------------------------------------------------------------------
    def _autocast(self):
        if self.cfg.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.cfg.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _resume(self) -> int | None:
        state = self.ckpt.restore(self.model, self.optimizer)
        self.step, self.best = state["step"], state.get("best_metric")
        return self.step

    def _train_batches(self):
        per_rank = distributed.rank_batch(self.cfg.micro_batch, self.dist)
        sampler = ResumableBatchSampler(len(self.train_set), per_rank, self.cfg.seed,
                                        start=self.step * self.cfg.grad_accum,
                                        rank=self.dist.rank, world_size=self.dist.world_size)
        # a private generator: creating a DataLoader iterator draws a seed, which must not consume the
        # global RNG (dropout, masking) or a resumed run would diverge from an uninterrupted one
        return iter(DataLoader(self.train_set, batch_sampler=sampler, collate_fn=self.task.collate,
                               generator=torch.Generator()))

    def _val_batches(self):
        n = self.cfg.eval_batches * self.cfg.micro_batch
        idx = list(range(min(len(self.val_set), n)))
        subset = torch.utils.data.Subset(self.val_set, idx)
        return DataLoader(subset, batch_size=self.cfg.micro_batch, collate_fn=self.task.collate,
                          generator=torch.Generator())

    # ---- one step ------------------------------------------------------------------------------
    def _train_step(self, batches) -> dict:
        cfg = self.cfg
        lr = lr_at(self.step, cfg)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        total, metrics, tokens = 0.0, {}, 0
        for i in range(cfg.grad_accum):
            batch = move_to(next(batches), self.device)
            tokens += self.task.tokens_in(batch) * self.dist.world_size
            with distributed.grad_sync(self.wrapped, self.dist, sync=i == cfg.grad_accum - 1):
                with self._autocast():
                    loss, m = self.task.loss(self.forward_model, batch)
                self.scaler.scale(loss / cfg.grad_accum).backward()
            total += float(loss.detach()) / cfg.grad_accum
            for k, v in m.items():
                metrics[k] = metrics.get(k, 0.0) + v / cfg.grad_accum
        total, metrics = self.dist.mean(total), {k: self.dist.mean(v) for k, v in metrics.items()}
        if not math.isfinite(total):
            raise TrainingDiverged(
                f"non-finite training loss ({total}) at step {self.step + 1}; the last good checkpoint is "
                f"{self.ckpt.latest()}. Lower --lr, raise warmup, or check the data for empty/odd samples.")
        self.scaler.unscale_(self.optimizer)
        gnorm = distributed.clip_grad_norm(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return {"loss": total, "lr": lr, "grad_norm": float(gnorm), "tokens": tokens, **metrics}

    def evaluate(self) -> dict[str, float]:
        if self.val_set is None or len(self.val_set) == 0:
            return {}
        self.model.eval()
        with self._autocast():
            batches = (move_to(b, self.device) for b in self._val_batches())
            result = self.task.evaluate(self.model, batches)
        self.model.train()
        return result

    def _is_better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.task.greater_is_better else value < self.best

    def _checkpoint(self, metrics: dict) -> Path:
        key = self.task.metric_for_best
        is_best = key in metrics and self._is_better(metrics[key])
        if is_best:
            self.best = metrics[key]
        return self.ckpt.save(self.step, self.model, self.optimizer,
                              {"best_metric": self.best, "metric_for_best": key, "eval": metrics},
                              self.tokenizer, extra_meta=self.meta,
                              is_best=is_best or not (self.out / "checkpoints" / "best.json").exists())

    # ---- the loop ------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        resumed_at = self._resume() if resume else None
        main = self.dist.is_main
        log = MetricsLog(self.out / "metrics.jsonl", resume_step=resumed_at) if main else distributed.NullLog()
        if main:
            (self.out / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
            write_run_info(self.out, cfg, resumed_at, world_size=self.dist.world_size)
        self.callbacks.on_start(self, self.step)
        summary = None
        try:
            summary = self._loop(log)
            return summary
        finally:
            self.callbacks.on_end(self, summary or {"step": self.step, "stopped_by": "error"})

    def _loop(self, log) -> dict:
        cfg, main = self.cfg, self.dist.is_main
        batches = self._train_batches()
        self.model.train()
        start = time.perf_counter()
        bar = progress(total=cfg.max_steps, initial=self.step, disable=not cfg.progress or not main,
                       desc=self.task.name)
        last_eval: dict = {}
        stopped_by = "max_steps"
        while self.step < cfg.max_steps:
            t0 = time.perf_counter()
            row = self._train_step(batches)
            dt = time.perf_counter() - t0
            row = {"step": self.step, "split": "train", **row, "tokens_per_s": row["tokens"] / max(dt, 1e-9),
                   "time": round(time.perf_counter() - start, 3)}
            if self.step % cfg.log_every == 0 or self.step == 1:
                log.write(row)
                self.callbacks.on_log(self, row)
            bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", refresh=False)
            bar.update(1)
            out_of_time = self.dist.any(  # rank 0's clock decides for all ranks
                main and cfg.max_minutes is not None and time.perf_counter() - start >= cfg.max_minutes * 60)
            if self.step % cfg.eval_every == 0 or self.step == cfg.max_steps or out_of_time:
                last_eval = self.evaluate()
                log.write({"step": self.step, "split": "val", **last_eval})
                self.callbacks.on_eval(self, last_eval)
                self.callbacks.on_checkpoint(self, self._checkpoint(last_eval))
                if main:
                    plot_losses(log.rows(), self.out / "loss.png", title=f"{self.task.name} loss")
            if out_of_time:
                stopped_by = "max_minutes"
                break
        bar.close()
        return {"step": self.step, "stopped_by": stopped_by, "eval": last_eval, "best": self.best,
                "seconds": round(time.perf_counter() - start, 2), "out": str(self.out)}
