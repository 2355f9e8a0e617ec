"""ONE trainer for every task: the task supplies batching, loss and metrics."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..progress import progress
from ..devices import resolve_device
from ..nn.fast_attention import forced as forced_attention
from . import distributed
from .budget import RunBudget
from .callbacks import Callback, CallbackList, trackers
from .checkpoint import CheckpointManager
from .dist_checkpoint import DistCheckpointManager
from .config import TrainConfig
from .logging import MetricsLog, format_curve, plot_losses
from .optim import make_optimizer
from .schedules import lr_at
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
    `eval_every` steps, keeps best/last checkpoints and a metrics log, and resumes exactly. With
    `cfg.max_minutes` the schedule spans the steps that fit in the budget (lingvis.train.budget), and the
    final evaluation + checkpoint follow the last step, outside the budget. `callbacks`
    (lingvis.train.callbacks.Callback) hear about logs, evaluations, checkpoints and the end; the
    trackers named in `cfg.log_to` are added on rank 0. `clock` (seconds) times the budget: by default the
    wall clock, or this process's CPU time with `cfg.budget_clock="cpu"` (the compute a run got on a shared
    machine); tests pass a fake one to make a budgeted run deterministic."""

    def __init__(self, model: nn.Module, task: Task, train_set: Dataset, val_set: Dataset | None,
                 cfg: TrainConfig, out_dir: str | Path, tokenizer=None, meta: dict | None = None,
                 callbacks: Sequence[Callback] = (), clock: Callable[[], float] | None = None):
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
        self.clock = clock or (time.process_time if cfg.budget_clock == "cpu" else time.perf_counter)
        self.unit: str | None = None  # what throughput counts: tokens or samples (Task.throughput_unit)
        trained = sum(p.numel() * p.element_size() for p in self.model.parameters() if p.requires_grad)
        weights = sum(p.numel() * p.element_size() for p in self.model.parameters())
        self.budget = RunBudget.from_config(cfg, checkpoint_bytes=weights + 2 * trained)

    # ---- setup -------------------------------------------------------------------------------
    def _autocast(self):
        if self.cfg.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.cfg.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _resume(self) -> int | None:
        state = self.ckpt.restore(self.model, self.optimizer)
        self.step, self.best = state["step"], state.get("best_metric")
        self.budget.restore(state)
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
        n = self.budget.batches_per_eval * self.cfg.micro_batch
        idx = list(range(min(len(self.val_set), n)))
        subset = torch.utils.data.Subset(self.val_set, idx)
        return DataLoader(subset, batch_size=self.cfg.micro_batch, collate_fn=self.task.collate,
                          generator=torch.Generator())

    # ---- one step ------------------------------------------------------------------------------
    def _train_step(self, batches) -> dict:
        cfg = self.cfg
        lr = lr_at(self.step, cfg, self.budget.lr_horizon)
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        total, metrics, tokens = 0.0, {}, 0
        for i in range(cfg.grad_accum):
            batch = move_to(next(batches), self.device)
            if self.unit is None:
                self.unit = self.task.throughput_unit(batch)
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
        # SDPA, not a per-process measured attention kernel: the same validation losses after a resume
        with self._autocast(), forced_attention("sdpa"):
            batches = (move_to(b, self.device) for b in self._val_batches())
            result = self.task.evaluate(self.model, batches)
        self.model.train()
        return result

    def _is_better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.task.greater_is_better else value < self.best

    def _checkpoint(self, metrics: dict, used: float = 0.0) -> Path:
        key = self.task.metric_for_best
        is_best = key in metrics and self._is_better(metrics[key])
        if is_best:
            self.best = metrics[key]
        return self.ckpt.save(self.step, self.model, self.optimizer,
                              {"best_metric": self.best, "metric_for_best": key, "eval": metrics,
                               **self.budget.state(used)},
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

    def _sync_plan(self) -> None:
        """Every rank takes rank 0's horizon and evaluation plan (their clocks differ)."""
        if not self.dist.distributed:
            return
        b = self.budget
        fields = ("horizon", "eval_every", "next_eval", "eval_batches")
        values = self.dist.broadcast([float(getattr(b, f) or 0) for f in fields])
        for f, v in zip(fields, values):
            setattr(b, f, int(v) or None)

    def _evaluate_and_save(self, log, used: Callable[[], float], plot: bool) -> dict:
        """Evaluate, log the val row (stamped with the run time before evaluating), checkpoint (its state
        records the run time after evaluating), maybe plot."""
        at = used()
        metrics = self.evaluate()
        log.write({"step": self.step, "split": "val", **metrics, "time": round(at, 3)})
        self.callbacks.on_eval(self, metrics)
        self.callbacks.on_checkpoint(self, self._checkpoint(metrics, used()))
        if plot and self.dist.is_main:
            plot_losses(log.rows(), self.out / "loss.png", title=f"{self.task.name} loss")
        return metrics

    def _loop(self, log) -> dict:
        cfg, main, b, clock = self.cfg, self.dist.is_main, self.budget, self.clock
        batches = self._train_batches()
        self.model.train()
        start = clock()

        def used() -> float:  # seconds of the run so far, earlier processes included
            return b.used_before + clock() - start

        bar = progress(total=b.end, initial=self.step, disable=not cfg.progress or not main, desc=self.task.name)
        budgeted = b.seconds is not None
        train_s = overhead_s = 0.0
        tokens, first_dt = 0, None
        stopped_by = self._stop_reason(used(), clock_too=False)  # a resumed run may have nothing left to do
        while stopped_by is None:
            t0 = clock()
            row = self._train_step(batches)
            dt = clock() - t0
            train_s += dt
            tokens += row["tokens"]
            if first_dt is None:
                first_dt = dt  # the first step of a process allocates: not timed for the plan
            else:
                b.record_step(dt)
            if b.calibrating and self.dist.any(main and (b.calibration_done() or used() >= b.seconds)):
                b.fix(self.step, used(), first_dt)
                self._sync_plan()
                bar.total = b.end
            row = {"step": self.step, "split": "train", **row, "tokens_per_s": row["tokens"] / max(dt, 1e-9),
                   "time": round(used(), 3)}
            if self.step % cfg.log_every == 0 or self.step == 1:
                log.write(row)
                self.callbacks.on_log(self, row)
            bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", refresh=False)
            bar.update(1)
            stopped_by = self._stop_reason(used())
            if stopped_by is None and b.should_eval(self.step):
                t1 = clock()
                b.replan(self.step, used())
                self._sync_plan()
                b.evaluated(self.step)
                bar.total = b.end
                self._evaluate_and_save(log, used, plot=not budgeted)
                cost = clock() - t1
                b.cycle_cost(cost)
                overhead_s += cost
        bar.close()
        end_used, unit = used(), self.unit or "tokens"
        t1 = clock()
        last_eval = self._evaluate_and_save(log, used, plot=True)
        final_s = clock() - t1
        summary = {"step": self.step, "stopped_by": stopped_by, "eval": last_eval, "best": self.best,
                   "seconds": round(end_used + final_s, 2), "train_seconds": round(train_s, 2),
                   "eval_seconds": round(overhead_s, 2), "final_eval_seconds": round(final_s, 2),
                   "eval_share": round(overhead_s / max(end_used - b.used_before, 1e-9), 4),
                   f"{unit}_per_s": round(tokens / max(train_s, 1e-9), 1), "horizon": b.end,
                   "eval_every": b.eval_every, "eval_batches": b.eval_batches, "out": str(self.out)}
        if main:
            self._report(summary, log.rows(), unit)
        return summary

    def _stop_reason(self, used: float, clock_too: bool = True) -> str | None:
        """Why to stop after this step: the horizon reached, or the budget spent by rank 0's clock."""
        b = self.budget
        if self.step >= b.end:
            return "max_steps" if b.end == b.max_steps else "max_minutes"
        late = clock_too and b.seconds is not None and used >= b.seconds
        return "max_minutes" if self.dist.any(self.dist.is_main and late) else None

    def _report(self, summary: dict, rows: list[dict], unit: str) -> None:
        """Two lines on stderr: throughput and evaluation cost, and the val loss against wall-clock time."""
        s = summary
        print(f"{self.task.name}: {s['step']} steps in {s['seconds']:.1f} s (stopped by {s['stopped_by']}); "
              f"{s[f'{unit}_per_s']:,.0f} {unit}/s over {s['train_seconds']:.1f} s of steps; evaluation + "
              f"checkpoints {s['eval_seconds']:.1f} s during the run ({s['eval_share']:.1%}) + "
              f"{s['final_eval_seconds']:.1f} s at the end", file=sys.stderr, flush=True)
        curve = format_curve(rows, self.task.metric_for_best)
        if curve:
            print(f"val {curve}  (plot: {self.out / 'loss.png'})", file=sys.stderr, flush=True)
