"""Run the `lingvis` CLI with a pause point, so a test can SIGKILL it at a known moment.

    python pausing_cli.py step:N|checkpoint:N MARKER_FILE lingvis-args...

`step:N`: pause right after optimizer step N. `checkpoint:N`: pause while the checkpoint of step N is
being written (inside `atomic_dir`, weights already in the temporary folder, optimizer/RNG not yet).
On pausing, MARKER_FILE is created and the process sleeps until it is killed.
With FAKE_STEP_SECONDS set in the environment, the trainer's clock is fake: each optimizer step takes
exactly that many seconds and nothing else takes time, so a --max-minutes run plans deterministically.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def pause(marker: Path) -> None:
    marker.write_text("paused")
    while True:
        time.sleep(60)


def install(point: str, marker: Path) -> None:
    kind, n = point.split(":")
    n = int(n)
    if kind == "step":
        from lingvis.train import trainer

        original = trainer.Trainer._train_step

        def train_step(self, batches):
            row = original(self, batches)
            if self.step == n:
                pause(marker)
            return row

        trainer.Trainer._train_step = train_step
    elif kind == "checkpoint":
        from lingvis.train import checkpoint

        original = checkpoint.write_native_files

        def write(model, folder, meta):
            original(model, folder, meta)
            if Path(folder).name.startswith(f".step-{n:07d}"):
                pause(marker)

        checkpoint.write_native_files = write
    else:
        raise SystemExit(f"unknown pause point {point!r}")


def fake_clock(step_seconds: float) -> None:
    from lingvis.train import trainer

    now = [0.0]
    init, step = trainer.Trainer.__init__, trainer.Trainer._train_step

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.clock = lambda: now[0]

    def train_step(self, batches):
        now[0] += step_seconds
        return step(self, batches)

    trainer.Trainer.__init__, trainer.Trainer._train_step = __init__, train_step


if __name__ == "__main__":
    if os.environ.get("FAKE_STEP_SECONDS"):
        fake_clock(float(os.environ["FAKE_STEP_SECONDS"]))
    install(sys.argv[1], Path(sys.argv[2]))
    from lingvis.cli import main

    sys.exit(main(sys.argv[3:]))
