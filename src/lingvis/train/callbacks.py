"""Trainer callbacks: hooks at the points a run reports something, and the built-in experiment trackers
(TensorBoard event files, Weights & Biases runs in offline mode).

A callback overrides any of the hooks; the trainer calls them on every rank, in order:
`on_start` (before the first step; `step` > 0 when resumed), `on_log` (each training row written to
metrics.jsonl), `on_eval` (validation metrics), `on_checkpoint` (a checkpoint folder was written),
`on_end` (the summary; also after an error, with `stopped_by: "error"`). Trackers write on rank 0 only.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from .._optional import require

TRACKERS = ("tensorboard", "wandb")


class Callback:
    """Override the hooks you need; `trainer` is the running `Trainer` (its `step`, `cfg`, `out`, `model`)."""

    def on_start(self, trainer, step: int) -> None:
        pass

    def on_log(self, trainer, row: dict) -> None:
        pass

    def on_eval(self, trainer, metrics: dict) -> None:
        pass

    def on_checkpoint(self, trainer, path: Path) -> None:
        pass

    def on_end(self, trainer, summary: dict) -> None:
        pass


class CallbackList(Callback):
    """Calls each hook of several callbacks in order."""

    def __init__(self, callbacks: Sequence[Callback] = ()):
        self.callbacks = list(callbacks)

    def on_start(self, trainer, step):
        for c in self.callbacks:
            c.on_start(trainer, step)

    def on_log(self, trainer, row):
        for c in self.callbacks:
            c.on_log(trainer, row)

    def on_eval(self, trainer, metrics):
        for c in self.callbacks:
            c.on_eval(trainer, metrics)

    def on_checkpoint(self, trainer, path):
        for c in self.callbacks:
            c.on_checkpoint(trainer, path)

    def on_end(self, trainer, summary):
        for c in self.callbacks:
            c.on_end(trainer, summary)


def _scalars(row: dict) -> dict[str, float]:
    """The numeric entries of a metrics row (step, split and time are bookkeeping, not curves)."""
    return {k: float(v) for k, v in row.items()
            if k not in ("step", "split", "time") and isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardCallback(Callback):
    """Event files under `<out>/tensorboard`: `train/<name>` every logged step, `val/<name>` every
    evaluation. A resumed run drops the events after its checkpoint step, as metrics.jsonl does."""

    def __init__(self, log_dir: str | Path):
        require("tensorboard", "--log-to tensorboard")
        self.log_dir, self.writer = Path(log_dir), None

    def on_start(self, trainer, step):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.log_dir), purge_step=step + 1 if step else None)
        self.writer.add_text("train_config", f"```\n{_json(dataclasses.asdict(trainer.cfg))}\n```", step)

    def _write(self, prefix: str, step: int, row: dict) -> None:
        for k, v in _scalars(row).items():
            self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def on_log(self, trainer, row):
        self._write("train", row["step"], row)

    def on_eval(self, trainer, metrics):
        self._write("val", trainer.step, metrics)
        self.writer.flush()

    def on_end(self, trainer, summary):
        if self.writer is not None:
            self.writer.close()


class WandbCallback(Callback):
    """A Weights & Biases run in `<out>/wandb`, offline unless WANDB_MODE says otherwise (`wandb sync`
    uploads it later). Project: WANDB_PROJECT or "lingvis"; run name: the run folder's name."""

    def __init__(self, out: str | Path):
        self.wandb = require("wandb", "--log-to wandb")
        self.out, self.run = Path(out), None

    def on_start(self, trainer, step):
        from .run_info import run_info

        self.run = self.wandb.init(project=os.environ.get("WANDB_PROJECT", "lingvis"), name=self.out.name,
                                   dir=str(self.out), mode=os.environ.get("WANDB_MODE", "offline"),
                                   config={**dataclasses.asdict(trainer.cfg), "run": run_info()})

    def on_log(self, trainer, row):
        self.run.log({f"train/{k}": v for k, v in _scalars(row).items()}, step=row["step"])

    def on_eval(self, trainer, metrics):
        self.run.log({f"val/{k}": v for k, v in _scalars(metrics).items()}, step=trainer.step)

    def on_end(self, trainer, summary):
        if self.run is not None:
            self.run.summary.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str))})
            self.run.finish(exit_code=1 if summary.get("stopped_by") == "error" else 0)
            if self.wandb.run is None:  # no other run open: stop wandb's service, which flushes the files
                self.wandb.teardown()    # (finish() returns before the offline run file is complete)


def trackers(names: Sequence[str], out: str | Path) -> list[Callback]:
    """The built-in tracker callbacks named by `TrainConfig.log_to` (raises naming the extra to install
    when a tracker's package is missing)."""
    made = {"tensorboard": lambda: TensorBoardCallback(Path(out) / "tensorboard"),
            "wandb": lambda: WandbCallback(out)}
    return [made[n]() for n in names]


def _json(obj) -> str:
    import json

    return json.dumps(obj, indent=2, default=str)
